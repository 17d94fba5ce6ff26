"""Write-back of durable states to RocksDB: the store's persisted offset never runs ahead of
what it holds, so a restart that reads the changelog from that offset rebuilds every state."""

from __future__ import annotations

import random
from pathlib import Path
from types import SimpleNamespace

import pytest
from rocksdict import Options, Rdict

from streams.worker.store import RdictPartition
from streams.worker.write_back import WriteBack


class Store:
    """What the write-back writes to: per partition a dict and a persisted offset."""

    def __init__(self) -> None:
        self.data: dict[int, dict[bytes, bytes]] = {}
        self.offsets: dict[int, int] = {}

    def write(self, number: int, items: list[tuple[bytes, bytes | None]]) -> None:
        data = self.data.setdefault(number, {})
        for key, value in items:
            if value is None:
                data.pop(key, None)
            else:
                data[key] = value

    def persist(self, number: int, offset: int) -> None:
        self.offsets[number] = offset


def write_back(store: Store, interval_s: float = 5.0, max_keys: int = 100) -> WriteBack:
    return WriteBack(store.write, store.persist, interval_s, max_keys)


def test_the_offset_is_recorded_only_once_the_states_it_covers_are_written() -> None:
    store = Store()
    wb = write_back(store)
    wb.take(0, [(b"a", b"1"), (b"b", b"1")], now=0.0)
    wb.reached(0, 10, now=0.0)
    wb.take(0, [(b"a", b"2"), (b"b", None)], now=1.0)
    wb.reached(0, 12, now=1.0)
    assert store.data == {} and store.offsets == {}  # nothing written, nothing vouched for
    assert wb.pending_of(0) == {b"a": b"2", b"b": None}
    wb.take(1, [(b"c", b"1")], now=5.0)
    wb.reached(1, 3, now=5.0)  # 5 s after the first: all of it is due
    assert store.data == {0: {b"a": b"2"}, 1: {b"c": b"1"}}
    assert store.offsets == {0: 12, 1: 3}
    assert wb.pending_of(0) == {} and wb.pending_of(1) == {}


def test_a_partition_with_nothing_waiting_records_its_offset_at_once() -> None:
    store = Store()
    wb = write_back(store)
    wb.take(0, [(b"a", b"1")], now=0.0)
    wb.reached(0, 4, now=0.0)
    wb.reached(1, 9, now=0.1)  # partition 1's group changed no state here
    assert store.offsets == {1: 9}


def test_too_many_waiting_states_are_written_before_the_interval() -> None:
    store = Store()
    wb = write_back(store, max_keys=3)
    wb.take(0, [(b"a", b"1"), (b"a", b"2")], now=0.0)  # one key
    wb.reached(0, 1, now=0.0)
    wb.take(0, [(b"b", b"1")], now=0.1)
    wb.reached(0, 2, now=0.1)
    assert store.offsets == {}
    wb.take(1, [(b"c", b"1")], now=0.2)
    wb.reached(1, 1, now=0.2)
    assert store.offsets == {0: 2, 1: 1}


def test_writing_some_partitions_keeps_the_others_waiting() -> None:
    store = Store()
    wb = write_back(store)
    for number in (0, 1):
        wb.take(number, [(b"k%d" % number, b"v")], now=0.0)
        wb.reached(number, 7, now=0.0)
    wb.write([1])
    assert store.offsets == {1: 7} and store.data == {1: {b"k1": b"v"}}
    wb.write()
    assert store.offsets == {0: 7, 1: 7}


@pytest.mark.parametrize("seed", range(6))
def test_a_crash_at_any_point_restores_every_state_from_the_changelog(seed: int) -> None:
    """Random groups on two partitions, each made durable in the changelog and then taken by
    the write-back; a crash anywhere loses what waits. The store plus the changelog read from
    its persisted offset must equal the whole changelog replayed (the oracle: no write-back)."""
    rng = random.Random(seed)
    store = Store()
    wb = write_back(store, interval_s=1.0, max_keys=rng.choice([2, 5, 50]))
    changelog: dict[int, list[tuple[bytes, bytes | None]]] = {0: [], 1: []}
    now = 0.0
    for _ in range(300):
        now += rng.choice([0.0, 0.05, 0.3])
        number = rng.randrange(2)
        items = [
            (b"u%d" % rng.randrange(8), None if rng.random() < 0.1 else b"%d" % rng.randrange(99))
            for _ in range(rng.randrange(1, 4))
        ]
        changelog[number].extend(items)  # Kafka has them ...
        wb.take(number, items, now)  # ... so the runtime marks them durable
        wb.reached(number, len(changelog[number]) - 1, now)
        if rng.random() < 0.1:  # a crash: what waits is lost
            for part, records in changelog.items():
                assert restored(store, part, records) == replayed(records)
    wb.write()
    for part, records in changelog.items():
        assert store.data.get(part, {}) == replayed(records)
        assert store.offsets[part] == len(records) - 1


def replayed(records: list[tuple[bytes, bytes | None]]) -> dict[bytes, bytes]:
    state: dict[bytes, bytes] = {}
    for key, value in records:
        if value is None:
            state.pop(key, None)
        else:
            state[key] = value
    return state


def restored(
    store: Store, number: int, records: list[tuple[bytes, bytes | None]]
) -> dict[bytes, bytes]:
    state = dict(store.data.get(number, {}))
    for key, value in records[store.offsets.get(number, -1) + 1 :]:
        if value is None:
            state.pop(key, None)
        else:
            state[key] = value
    return state


def test_a_partition_reads_its_waiting_states_over_rocksdb(tmp_path: Path) -> None:
    db = Rdict(str(tmp_path / "db"), Options(raw_mode=True))
    try:
        db[b"old"] = b"1"
        db[b"gone"] = b"1"
        persisted: dict[int, int] = {}
        wb = WriteBack(
            lambda number, items: RdictPartition(db).write_all(items),
            persisted.__setitem__,
            interval_s=60.0,
            max_keys=100,
        )
        owner = SimpleNamespace(write_back=wb, writes_back=lambda number: True)
        part = RdictPartition(db, owner, 3)  # type: ignore[arg-type]
        part.write_all([(b"old", b"2"), (b"gone", None), (b"new", b"1")])
        wb.reached(3, 41, now=0.0)
        assert db.get(b"old") == b"1" and db.get(b"new") is None  # not written yet
        assert part.get(b"old") == b"2" and part[b"new"] == b"1"
        assert part.get(b"gone") is None and b"gone" not in part
        assert persisted == {}
        assert dict(part.items()) == {b"old": b"2", b"new": b"1"}  # written first
        assert db.get(b"old") == b"2" and db.get(b"gone") is None
        assert persisted == {3: 41}
    finally:
        db.close()
