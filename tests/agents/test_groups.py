"""Durable groups (issue 20): a group starts at once when none is in flight; while one is in
flight the fold goes on without waiting for it, up to ``GROUP_RECORDS`` records; what was folded
meanwhile starts as the next group as soon as the one before it is durable, without a tick."""

from __future__ import annotations

import asyncio

import pytest

from streams.worker import runtime as runtime_module
from tests.agents.conftest import Acks, MemorySink, Message, batch, event, make_worker, recording


class GatedSink(MemorySink):
    """Changelog flushes wait until the gate opens: the group stays in flight until then."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()

    async def flush(self, role: str) -> dict[tuple[str, int], int]:
        if role == "changelog":
            await self.gate.wait()
        return await super().flush(role)


def test_the_fold_goes_on_while_a_group_is_in_flight_and_the_next_group_chains() -> None:
    sink = GatedSink()
    worker = make_worker(sink)
    stops, acks, runtime = recording(worker), Acks(), worker.runtime
    seen: dict[str, object] = {}

    async def scenario() -> None:
        await runtime.on_record(Message(0, 1, batch(event(1, "u1"))), acks.of(1))
        await asyncio.sleep(0.05)
        seen["first in flight"] = not runtime._idle() and sink.flushes.count("changelog") == 0
        for offset, user in ((2, "u2"), (3, "u3")):  # each returns without waiting on the group
            await asyncio.wait_for(
                runtime.on_record(Message(0, offset, batch(event(offset, user))), acks.of(offset)),
                0.5,
            )
        seen["folded meanwhile"] = runtime.engine.user("u3") is not None
        seen["acked meanwhile"] = list(acks.done)
        sink.gate.set()
        for _ in range(100):  # no tick, no flusher, no finish_groups: the next group chains
            if acks.done == [1, 2, 3]:
                break
            await asyncio.sleep(0.01)

    asyncio.run(scenario())
    assert seen == {"first in flight": True, "folded meanwhile": True, "acked meanwhile": []}
    assert acks.done == [1, 2, 3]
    assert sink.flushes.count("changelog") == 2  # the group of record 1, then that of 2 and 3
    assert stops == []


def test_the_fold_waits_for_the_group_in_flight_once_group_records_are_pending(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(runtime_module, "GROUP_RECORDS", 2)
    sink = GatedSink()
    worker = make_worker(sink)
    acks, runtime = Acks(), worker.runtime
    seen: dict[str, bool] = {}

    async def scenario() -> None:
        await runtime.on_record(Message(0, 1, batch(event(1, "u1"))), acks.of(1))
        await runtime.on_record(Message(0, 2, batch(event(2, "u2"))), acks.of(2))
        third = asyncio.create_task(
            runtime.on_record(Message(0, 3, batch(event(3, "u3"))), acks.of(3))
        )
        await asyncio.sleep(0.1)
        seen["third waits"] = not third.done()  # two records pending: backpressure
        sink.gate.set()
        await asyncio.wait_for(third, 1.0)
        await runtime.finish_groups()

    asyncio.run(scenario())
    assert seen == {"third waits": True}
    assert acks.done == [1, 2, 3]
