"""Agent tests run Faust agents with ``test_context()``: no broker, deliveries into memory."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from schemas.records import Event, Headers
from streams.settings import Settings
from streams.worker.app import Worker, create_worker
from streams.worker.codecs import encode_batch

T0 = 1_767_225_600_000
BY_USER = "engagement.events.by_user"


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

    def produce_all(self, topic: str, records: list[tuple[int, bytes, bytes | None]]) -> None:
        for partition, key, value in records:
            self.produce(topic, key, value, partition)

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


@dataclass
class Message:
    """The part of a Faust message the runtime reads."""

    partition: int
    offset: int
    value: bytes | None
    key: bytes | None = b"k"
    headers: Headers = field(default_factory=lambda: [("trace", b"t-1")])
    topic: str = BY_USER


@dataclass
class Acks:
    done: list[int] = field(default_factory=list)

    def of(self, offset: int) -> Callable[[], Awaitable[None]]:
        async def ack() -> None:
            self.done.append(offset)

        return ack


def recording(worker: Worker) -> list[str]:
    stops: list[str] = []
    worker.runtime.exit = stops.append
    return stops


def batch(*events: Event) -> bytes:
    return encode_batch(0, list(events))


def event(i: int, user: str) -> Event:
    return Event(f"e{i}", user, "page_view", T0 + i * 1000)
