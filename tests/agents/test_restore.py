"""Bulk restore of newly active partitions (streams.worker.store) and the choice of stream
partitions the consumer rewinds (streams.worker.consumer). No broker: the changelog reader is a
recorder."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from faust.types import TP

from agents.logic.state import UserState, encode
from streams.worker.consumer import partitions_to_rewind
from streams.worker.store import BEGINNING, MemoryStore
from tests.agents.conftest import MemorySink, make_worker


@dataclass
class Message:
    _partition: int
    _offset: int
    _key: bytes
    _value: bytes | None

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes:
        return self._key

    def value(self) -> bytes | None:
        return self._value


@dataclass
class Changelog:
    """A changelog in memory; ``restore`` is the store's restorer (reads from given offsets)."""

    records: dict[int, list[tuple[bytes, bytes | None]]]
    calls: list[dict[int, int]] = field(default_factory=list)

    def restore(self, topic: str, starts: Mapping[int, int], apply: Any) -> dict[int, int]:
        self.calls.append(dict(starts))
        last: dict[int, int] = {}
        for number, start in starts.items():
            first = 0 if start == BEGINNING else start
            for offset, (key, value) in enumerate(self.records.get(number, [])):
                if offset >= first:
                    apply(Message(number, offset, key, value))
                    last[number] = offset
        return last


def store_with(changelog: Changelog, active: set[int]) -> tuple[MemoryStore, list[set[int]]]:
    worker = make_worker(MemorySink())
    store = worker.app.tables["users"].data  # type: ignore[attr-defined]
    assert isinstance(store, MemoryStore)
    store.restorer = changelog.restore
    topic = store.table.changelog_topic_name
    current = [active]
    store.app.assignor.assigned_actives = lambda: {TP(topic, n) for n in current[0]}
    return store, current


def rebalance(store: MemoryStore) -> None:
    asyncio.run(store.on_rebalance(set(), set(), set(), 1))


def test_a_newly_active_partition_is_read_in_bulk_and_its_offset_persisted() -> None:
    changelog = Changelog({0: [(b"u1", b"a"), (b"u2", b"b"), (b"u1", b"c"), (b"u2", None)]})
    store, _ = store_with(changelog, {0})
    rebalance(store)
    assert dict(store.partition(0)) == {b"u1": b"c"}
    assert store.persisted_offset(TP(store.table.changelog_topic_name, 0)) == 3
    assert changelog.calls == [{0: BEGINNING}]


def test_a_partition_that_stays_active_is_not_read_again() -> None:
    changelog = Changelog({0: [(b"u1", b"a")], 1: [(b"u9", b"z")]})
    store, current = store_with(changelog, {0})
    rebalance(store)
    current[0] = {0, 1}
    rebalance(store)
    assert changelog.calls == [{0: BEGINNING}, {1: BEGINNING}]
    assert dict(store.partition(1)) == {b"u9": b"z"}


def test_a_partition_that_comes_back_is_read_from_the_beginning_into_an_empty_store() -> None:
    changelog = Changelog({0: [(b"u1", b"a"), (b"u2", b"b")]})
    store, current = store_with(changelog, {0})
    rebalance(store)
    store.partition(0)[b"stale"] = b"left from before"
    current[0] = set()
    rebalance(store)
    current[0] = {0}
    rebalance(store)
    assert dict(store.partition(0)) == {b"u1": b"a", b"u2": b"b"}
    assert changelog.calls == [{0: BEGINNING}, {0: BEGINNING}]


def test_stream_partitions_without_a_committed_offset_are_rewound_to_the_start() -> None:
    committed: dict[TP, int | None] = {
        TP("by_user", 1): None,  # Faust's record of a commit at 0: aiokafka does not seek to 0
        TP("by_user", 2): 17,  # aiokafka seeks this one itself
    }
    assigned = [
        TP("by_user", 0),  # the killed worker never committed: from the start
        TP("by_user", 1),
        TP("by_user", 2),
        TP("users-changelog", 0),  # recovery positions changelogs, not us
    ]
    rewind = partitions_to_rewind(assigned, committed, {"users-changelog"})
    assert rewind == [TP("by_user", 0), TP("by_user", 1)]


@dataclass
class Recovered:
    """What Faust's recovery hands ``apply_changelog_batch``: events with a message."""

    message: Any


@dataclass
class FaustMessage:
    partition: int
    key: bytes
    value: bytes | None


def test_a_partition_kept_across_a_missed_rebalance_is_rebuilt_when_recovery_wrote_to_it() -> None:
    """A worker paused past its session keeps its partitions in memory while another worker
    takes them over and writes their changelog; when it resumes and gets them back, Faust's
    recovery reads the tail into its store, and the runtime rebuilds them from the store."""
    worker = make_worker(MemorySink())
    runtime = worker.runtime
    store = runtime.table.data
    assert isinstance(store, MemoryStore)
    topic = store.table.changelog_topic_name
    active = {TP(topic, 0), TP(topic, 1)}
    asyncio.run(store.on_recovery_completed(active, set()))
    assert sorted(runtime.engine.partitions) == [0, 1]
    before = runtime.engine.partitions[1]
    assert sum(before.aggregates.stages.values()) == 0
    day_ms = 86_400_000
    t0 = 1_767_225_600_000
    written = encode(UserState(t0, t0, t0 // day_ms))  # by the other owner, meanwhile
    store.apply_changelog_batch([Recovered(FaustMessage(1, b"u9", written))], None, None)
    asyncio.run(store.on_recovery_completed(active, set()))
    after = runtime.engine.partitions[1]
    assert after is not before and sum(after.aggregates.stages.values()) == 1
    assert runtime.engine.partitions[0] is not None
    unchanged = runtime.engine.partitions[0]
    asyncio.run(store.on_recovery_completed(active, set()))  # nothing recovered: kept as built
    assert runtime.engine.partitions[0] is unchanged and runtime.engine.partitions[1] is after


def test_a_rebuilt_partition_keeps_its_changes_in_flight() -> None:
    """Recovery may read a partition's changelog while a group of this worker's own changes is
    on its way there: the rebuilt partition counts those changes, and when Kafka confirms
    them they land in its store (not in a partition object thrown away)."""
    worker = make_worker(MemorySink())
    runtime = worker.runtime
    store = runtime.table.data
    assert isinstance(store, MemoryStore)
    topic = store.table.changelog_topic_name
    active = {TP(topic, 1)}
    asyncio.run(store.on_recovery_completed(active, set()))
    day_ms = 86_400_000
    t0 = 1_767_225_600_000
    mine = encode(UserState(t0, t0, t0 // day_ms))
    runtime.engine.partitions[1].flushing[b"u7"] = mine  # taken for a group, not yet durable
    written = encode(UserState(t0, t0, t0 // day_ms))
    store.apply_changelog_batch([Recovered(FaustMessage(1, b"u9", written))], None, None)
    asyncio.run(store.on_recovery_completed(active, set()))
    after = runtime.engine.partitions[1]
    assert sum(after.aggregates.stages.values()) == 2
    assert after.get(b"u7") == mine
    assert runtime.engine.mark_durable([(1, b"u7", mine)]) == {1}
    assert after.store[b"u7"] == mine and not after.flushing
    assert sum(after.aggregates.stages.values()) == 2
