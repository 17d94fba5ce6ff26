"""Agent tests run Faust agents with ``test_context()``: no broker, deliveries into memory."""

from __future__ import annotations

from collections import defaultdict

import pytest

from schemas.records import Headers
from streams.settings import Settings
from streams.worker.app import Worker, create_worker


class MemorySink:
    """Records what the stages would deliver; ``flush`` always succeeds."""

    def __init__(self) -> None:
        self.records: dict[str, list[tuple[bytes | None, bytes | None, int, Headers | None]]] = (
            defaultdict(list)
        )
        self.flushes: list[str] = []

    def produce(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int = -1,
        headers: Headers | None = None,
    ) -> None:
        self.records[topic].append((key, value, partition, headers))

    async def flush(self, role: str) -> dict[tuple[str, int], int]:
        self.flushes.append(role)
        return {}


@pytest.fixture
def sink() -> MemorySink:
    return MemorySink()


def make_worker(sink: MemorySink, **env: str) -> Worker:
    settings = Settings.from_env(
        {
            "ENGAGEMENT_BROKER": "kafka://127.0.0.1:9",  # never contacted in these tests
            "ENGAGEMENT_APP_ID": "agents-test",
            "ENGAGEMENT_PARTITIONS": "2",
            "ENGAGEMENT_CLOCK": "event",
            **env,
        }
    )
    worker = create_worker(settings, deliverer=sink)
    for number in range(settings.partitions):
        worker.runtime.engine.assign(number, {})
    worker.runtime.ready.set()
    return worker
