"""No message can stop the pipeline, and nothing is skipped in silence (issue 15, activity side):
unreadable by_user records are quarantined unfolded and acknowledged; an unreadable stored
state, a group that cannot be made durable or a fold that raises stop the worker (recorded here
instead of exiting) and nothing past them is acknowledged."""

from __future__ import annotations

import asyncio

import orjson

from agents.logic.state import VERSION as STATE_VERSION
from agents.logic.state import UserState, encode
from tests.agents.conftest import (
    BY_USER,
    T0,
    Acks,
    MemorySink,
    Message,
    batch,
    event,
    make_worker,
    recording,
)

QUARANTINE = "engagement.events.by_user.quarantine"


def test_unreadable_records_are_quarantined_whole_and_the_partition_moves_on(
    sink: MemorySink,
) -> None:
    worker = make_worker(sink)
    stops, acks, runtime = recording(worker), Acks(), worker.runtime
    half_bad = orjson.loads(batch(event(1, "ghost-1"), event(2, "ghost-2")))
    half_bad["rows"][1][1] = "yesterday"  # the second row is unreadable, the first is fine
    records = [
        Message(0, 10, batch(event(0, "before"))),
        Message(0, 11, b"\x00\x9cgarbage"),
        Message(0, 12, orjson.dumps({"v": 9, "rows": [["ghost-3", T0, "g", "click", None]]})),
        Message(0, 13, None),  # a tombstone
        Message(0, 14, orjson.dumps(half_bad)),
        Message(0, 15, batch(event(3, "after"))),
    ]

    async def scenario() -> None:
        for record in records:
            await runtime.on_record(record, acks.of(record.offset))
        await runtime.finish_groups()

    asyncio.run(scenario())
    quarantined = sink.records[QUARANTINE]
    assert [(key, value) for key, value, _, _ in quarantined] == [
        (r.key, r.value) for r in records[1:5]
    ]
    reasons = [dict(h or [])["engagement.error.reason"] for _, _, _, h in quarantined]
    assert reasons == [b"not_json", b"unknown_version", b"tombstone", b"invalid_batch"]
    first = dict(quarantined[0][3] or [])
    assert first["trace"] == b"t-1"  # original headers kept
    assert (first["engagement.error.topic"], first["engagement.error.offset"]) == (
        BY_USER.encode(),
        b"11",
    )
    assert runtime.engine.user("before") and runtime.engine.user("after")
    assert not any(runtime.engine.user(f"ghost-{i}") for i in (1, 2, 3))
    assert sorted(acks.done) == list(range(10, 16))
    assert runtime.processed_until[0] == 16
    assert not stops
    counted = {
        reason: worker.metrics.quarantined.labels(reason)._value.get()
        for reason in ("not_json", "unknown_version", "tombstone", "invalid_batch")
    }
    assert counted == dict.fromkeys(counted, 1.0)


def test_the_agent_quarantines_through_faust(sink: MemorySink) -> None:
    worker = make_worker(sink)

    async def scenario() -> None:
        async with worker.activity.test_context() as agent:
            await agent.put(b'{"v": 99}', key=b"x", partition=0)
            await agent.put(batch(event(1, "good")), key=b"good", partition=0)
        await worker.runtime.finish_groups()

    asyncio.run(scenario())
    assert [value for _, value, _, _ in sink.records[QUARANTINE]] == [b'{"v": 99}']
    assert worker.runtime.engine.user("good") is not None


def test_an_unreadable_state_stops_the_worker_naming_topic_partition_offset(
    sink: MemorySink,
) -> None:
    worker = make_worker(sink)
    stops, runtime = recording(worker), worker.runtime
    runtime.locate = lambda partition, key: 41 if (partition, key) == (1, b"u7") else None
    runtime.engine.revoke(1)
    store = runtime.table.partition_store(1)
    newer = STATE_VERSION + 1
    store[b"u7"] = bytes([newer]) + encode(UserState(T0, T0, 20454))[1:]  # a newer state version
    runtime.on_partitions({0, 1}, set())
    assert len(stops) == 1
    message = stops[0]
    assert "agents-test-users-changelog partition 1 at offset 41" in message
    assert f"state version {newer}" in message and "u7" not in message
    assert 1 not in runtime.engine.partitions and not runtime.ready.is_set()
    assert runtime.readiness() == (False, "stopping")
    acks = Acks()

    async def after() -> None:  # records of the partition not taken over: never acked
        await runtime.on_record(Message(1, 5, batch(event(1, "late"))), acks.of(5))
        await runtime.on_record(Message(1, 6, None), acks.of(6))
        await runtime.finish_groups()

    asyncio.run(after())
    assert acks.done == [] and runtime.engine.user("late") is None
    assert QUARANTINE not in sink.records


class StuckSink(MemorySink):
    """The changelog never becomes durable (Kafka refuses it; the deliverer keeps retrying)."""

    async def flush(self, role: str) -> dict[tuple[str, int], int]:
        if role == "changelog":
            await asyncio.Event().wait()
        return await super().flush(role)


def test_a_group_not_durable_in_time_stops_the_worker_and_acks_nothing() -> None:
    sink = StuckSink()
    worker = make_worker(sink, ENGAGEMENT_DURABLE_TIMEOUT="1s")
    stops, acks, runtime = recording(worker), Acks(), worker.runtime
    seen: list[tuple[bool, str]] = []

    async def scenario() -> None:
        await runtime.on_record(Message(0, 7, batch(event(1, "u1"))), acks.of(7))
        await runtime.on_record(Message(0, 8, batch(event(2, "u2"))), acks.of(8))
        await asyncio.sleep(0.1)  # the first group (started at once) is in flight
        seen.append(runtime.readiness())
        await asyncio.sleep(0.7)  # past half the timeout: stuck
        seen.append(runtime.readiness())
        await runtime.finish_groups()  # returns once the timeout stopped the worker
        await runtime.on_record(Message(0, 9, batch(event(3, "u3"))), acks.of(9))

    asyncio.run(scenario())
    assert seen[0] == (True, "")
    assert not seen[1][0] and "not been durable" in seen[1][1]
    assert acks.done == []
    assert len(stops) == 1 and "within 1s" in stops[0]
    # a group starts at once when none is in flight: the stuck one holds record 7 only, and
    # record 8 (folded meanwhile) waits behind it, unacknowledged too
    assert f"{BY_USER}[0]@7..7" in stops[0]
    assert runtime.engine.user("u3") is None  # nothing folded after the stop


def test_a_fold_that_raises_stops_the_worker_unacknowledged(sink: MemorySink) -> None:
    worker = make_worker(sink)
    stops, acks, runtime = recording(worker), Acks(), worker.runtime

    class Broken:
        """The engine, with a fold that raises. A wrapper, not an attribute patched onto the
        engine: compiled by mypyc, Engine's methods are read-only."""

        def __init__(self, engine: object) -> None:
            self.engine = engine

        def __getattr__(self, name: str) -> object:
            return getattr(self.engine, name)

        def process(self, *args: object, **kwargs: object) -> None:
            raise RuntimeError("a bug")

    runtime.engine = Broken(runtime.engine)  # type: ignore[assignment]

    async def scenario() -> None:
        await runtime.on_record(Message(0, 3, batch(event(1, "u1"))), acks.of(3))
        await runtime.finish_groups()

    asyncio.run(scenario())
    assert acks.done == []
    assert stops and f"{BY_USER}[0]@3 failed" in stops[0] and "a bug" in stops[0]


class StuckQuarantine(MemorySink):
    async def flush(self, role: str) -> dict[tuple[str, int], int]:
        if role == "dead_letter":
            await asyncio.Event().wait()
        return await super().flush(role)


def test_a_quarantine_that_cannot_be_written_stops_the_worker_unacknowledged() -> None:
    worker = make_worker(StuckQuarantine(), ENGAGEMENT_DURABLE_TIMEOUT="300ms")
    stops, acks, runtime = recording(worker), Acks(), worker.runtime

    async def scenario() -> None:
        await runtime.on_record(Message(1, 4, b"garbage"), acks.of(4))
        await runtime.on_record(Message(1, 5, batch(event(1, "u1"))), acks.of(5))

    asyncio.run(scenario())
    assert acks.done == [] and runtime.engine.user("u1") is None
    assert stops == [f"{BY_USER}[1]@4 failed (timed out); not acked"]
