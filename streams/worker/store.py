"""The user-state table: a Faust table whose stores hand each partition to the engine.

Faust still does what it is good at for this table — declaring the compacted changelog topic,
co-assigning its partitions with ``events.by_user``, driving recovery after a restart or
rebalance. The hot path bypasses Faust's per-key changelog send (~250 µs a key): the engine
writes the partition's key-value store directly and the changelog records go out through a
confluent-kafka producer, coalesced per batch. The stores below therefore expose
``partition(n)`` as a plain mutable mapping of bytes to bytes, and tell the runtime when
partitions are recovered or revoked.

Recovery bypasses Faust's per-record path too (~150 µs a record: minutes for a million users).
When a partition becomes active here, :meth:`_Restoring.restore_fresh` reads its changelog in
bulk with confluent-kafka (from the store's persisted offset, or the beginning) before Faust's
recovery starts, and reports how far it got as the store's persisted offset, so Faust's
recovery finds nothing left to read (or only a tail written meanwhile). Both stores track that
offset: the runtime moves it forward each time a group of changes is in the changelog and the
store (:meth:`StateTable.persist_offset`), so a partition that stays active across a rebalance
is not read again either.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import time
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from typing import Any, cast

import faust
from faust.stores import memory as faust_memory
from faust.stores import rocksdb as faust_rocksdb
from faust.types import TP

from schemas.errors import SettingsError
from streams.worker.write_back import WriteBack

log = logging.getLogger(__name__)
#: (active, standby, changed): changed are active partitions whose store recovery wrote to
PartitionsChanged = Callable[[set[int], set[int], frozenset[int]], None]
Apply = Callable[[Any], None]  # one confluent-kafka message
#: (topic, partition -> first offset, apply) -> partition -> offset of the last record read
Restorer = Callable[[str, Mapping[int, int], Apply], dict[int, int]]
ROCKSDICT = "rocksdict://"
BEGINNING = -2  # confluent_kafka.OFFSET_BEGINNING


class _Restoring:
    """Mixin: bulk restore of newly active partitions; ``on_partitions`` after recovery."""

    on_partitions: PartitionsChanged | None = None
    restorer: Restorer | None = None
    table: Any
    app: Any
    _active: frozenset[int] = frozenset()
    _changed: frozenset[int] = frozenset()  # partitions recovery wrote to since the last notify
    # provided by the store classes below
    restore_start: Callable[[int], int]  # first offset to read of a partition made active here
    partition: Callable[[int], MutableMapping[bytes, bytes]]
    set_persisted_offset: Callable[[TP, int], None]

    async def on_rebalance(
        self, assigned: set[TP], revoked: set[TP], newly_assigned: set[TP], generation_id: int = 0
    ) -> None:
        await super().on_rebalance(assigned, revoked, newly_assigned, generation_id)  # type: ignore[misc]
        await self.restore_fresh()

    def active_partitions(self) -> set[int]:
        topic = self.table.changelog_topic_name
        return {tp.partition for tp in self.app.assignor.assigned_actives() if tp.topic == topic}

    async def restore_fresh(self) -> None:
        """Read the changelog of the partitions that became active here since the last
        rebalance into the store, in bulk, before Faust's own recovery looks at them."""
        active = self.active_partitions()
        fresh, self._active = active - self._active, frozenset(active)
        if self.restorer is None or not fresh:
            return
        self._changed |= fresh
        started = time.monotonic()
        starts = {number: self.restore_start(number) for number in sorted(fresh)}
        targets = {number: self.partition(number) for number in starts}
        count, restored = await asyncio.to_thread(self._restore, starts, targets)
        for number, offset in restored.items():
            self.set_persisted_offset(TP(self.table.changelog_topic_name, number), offset)
        log.info(
            "restored partitions %s from the changelog: %d records in %.2fs",
            sorted(fresh),
            count,
            time.monotonic() - started,
        )

    def _restore(
        self, starts: dict[int, int], targets: dict[int, MutableMapping[bytes, bytes]]
    ) -> tuple[int, dict[int, int]]:
        assert self.restorer is not None
        count = 0

        def apply(message: Any) -> None:
            nonlocal count
            count += 1
            data, key, value = targets[message.partition()], message.key(), message.value()
            if value is None:
                data.pop(key, None)
            else:
                data[key] = value

        last = self.restorer(self.table.changelog_topic_name, starts, apply)
        return count, last

    def _recovered(self, partitions: set[int]) -> None:
        """Recovery wrote these partitions' stores (Faust's per-record path)."""
        self._changed |= partitions

    def _notify(self, active_tps: set[TP], standby_tps: set[TP]) -> None:
        """Tell the runtime which partitions are active and standby, and which active ones
        recovery changed: a partition this worker kept across a rebalance it did not take
        part in (paused past its session) may have been written by another owner meanwhile,
        and what the runtime built from it before is stale."""
        topic = self.table.changelog_topic_name
        active = {tp.partition for tp in active_tps if tp.topic == topic}
        changed, self._changed = self._changed & active, frozenset()
        if self.on_partitions is not None:
            self.on_partitions(
                active, {tp.partition for tp in standby_tps if tp.topic == topic}, changed
            )


class MemoryStore(_Restoring, faust_memory.Store):  # type: ignore[type-arg]
    """``memory://`` with one dict per partition, and the changelog offset each holds."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.partitions: dict[int, dict[bytes, bytes]] = {}
        self.offsets: dict[int, int] = {}

    def persisted_offset(self, tp: TP) -> int | None:
        return self.offsets.get(tp.partition)

    def set_persisted_offset(self, tp: TP, offset: int) -> None:
        self.offsets[tp.partition] = offset

    def restore_start(self, number: int) -> int:
        """A partition that becomes active here is read from the changelog's beginning."""
        self.partitions[number] = {}
        self.offsets.pop(number, None)
        return BEGINNING

    def partition(self, number: int) -> MutableMapping[bytes, bytes]:
        return self.partitions.setdefault(number, {})

    def apply_changelog_batch(self, batch: Any, to_key: Any, to_value: Any) -> None:
        recovered: set[int] = set()
        for event in batch:
            message = event.message
            recovered.add(message.partition)
            data = self.partition(message.partition)
            if message.value is None:
                data.pop(message.key, None)
            else:
                data[message.key] = message.value
        self._recovered(recovered)

    async def on_recovery_completed(self, active_tps: set[TP], standby_tps: set[TP]) -> None:
        keep = {tp.partition for tp in active_tps | standby_tps}
        for number in [n for n in self.partitions if n not in keep]:
            del self.partitions[number]
            self.offsets.pop(number, None)
        self._notify(active_tps, standby_tps)

    def reset_state(self) -> None:
        self.partitions.clear()
        self.offsets.clear()


class RdictPartition(MutableMapping[bytes, bytes]):
    """One partition's RocksDB (rocksdict, raw mode) as a mapping, hiding Faust's offset key.
    With ``owner`` (the store, and the partition's number), :meth:`write_all` goes through the
    store's write-back (:mod:`streams.worker.write_back`) and reads look at what waits there."""

    __slots__ = ("_db", "_number", "_owner", "_pending")

    def __init__(self, db: Any, owner: RocksStore | None = None, number: int = 0) -> None:
        self._db = db
        self._owner = owner
        self._number = number
        self._pending = None if owner is None else owner.write_back.pending_of(number)

    def __getitem__(self, key: bytes) -> bytes:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value  # type: ignore[no-any-return]

    def get(self, key: bytes, default: Any = None) -> Any:
        pending = self._pending
        value = pending[key] if pending and key in pending else self._db.get(key)
        return default if value is None else value

    # single writes: the bulk restore's, of a partition not active here before, with nothing
    # pending (RocksStore.restore_start wrote it all first, on the event loop's thread)
    def __setitem__(self, key: bytes, value: bytes) -> None:
        self._db[key] = value

    def __delitem__(self, key: bytes) -> None:
        self._db.delete(key)

    def write_all(self, items: list[tuple[bytes, bytes | None]]) -> None:
        """Many puts and deletes (``None``): to the store's write-back, or at once in one
        RocksDB write batch (~1.4 µs a key against ~3 µs for single puts)."""
        if self._owner is not None and self._owner.writes_back(self._number):
            self._owner.write_back.take(self._number, items, time.monotonic())
        else:
            write_batch(self._db, items)

    def _write_pending(self) -> None:
        if self._owner is not None and self._pending:
            self._owner.write_back.write([self._number])

    def __iter__(self) -> Iterator[bytes]:
        self._write_pending()
        offset_key = faust_rocksdb.Store.offset_key
        for key in self._db.keys():  # noqa: SIM118
            if key != offset_key:
                yield key

    def items(self) -> Iterator[tuple[bytes, bytes]]:  # type: ignore[override]
        self._write_pending()
        offset_key = faust_rocksdb.Store.offset_key
        for key, value in self._db.items():
            if key != offset_key:
                yield key, value

    def __len__(self) -> int:
        return sum(1 for _ in self)


def write_batch(db: Any, items: list[tuple[bytes, bytes | None]]) -> None:
    """Puts and deletes (``None``) in one RocksDB write batch."""
    from rocksdict import WriteBatch  # the rocksdb extra; RocksStore checked it is there

    batch = WriteBatch(raw_mode=True)
    for key, value in items:
        if value is None:
            batch.delete(key)
        else:
            batch.put(key, value)
    db.write(batch)


class RocksStore(_Restoring, faust_rocksdb.Store):
    """``rocksdict://``: Faust's RocksDB store on the rocksdict driver, one DB per partition,
    written back in groups (:mod:`streams.worker.write_back`; ``write_back.interval_s`` 0:
    written through)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        require_store(ROCKSDICT)
        kwargs["driver"] = "rocksdict"
        super().__init__(*args, **kwargs)
        self.write_back = WriteBack(self._write_items, self._persist)

    _settled = False  # between a recovery's end and the next rebalance

    def writes_back(self, number: int) -> bool:
        """Whether partition ``number``'s durable writes wait in the write-back: only while
        it is active here and no rebalance is under way (a group finishing meanwhile writes
        at once, as it did before there was a write-back)."""
        return self._settled and self.write_back.interval_s > 0 and number in self._active

    def _write_items(self, number: int, items: list[tuple[bytes, bytes | None]]) -> None:
        write_batch(self._db_for_partition(number), items)

    def _persist(self, number: int, offset: int) -> None:
        faust_rocksdb.Store.set_persisted_offset(
            self, TP(self.table.changelog_topic_name, number), offset
        )

    def persist_after_writes(self, number: int, offset: int) -> None:
        """The runtime's changes of partition ``number`` are in the changelog up to
        ``offset``: the store records it once they are in RocksDB."""
        self.write_back.reached(number, offset, time.monotonic())

    def set_persisted_offset(self, tp: TP, offset: int) -> None:
        """Recovery's and the bulk restore's offsets: recorded after what was pending (which
        they may have written over)."""
        self.write_back.write([tp.partition])
        super().set_persisted_offset(tp, offset)

    def persisted_offset(self, tp: TP) -> int | None:
        self.write_back.write([tp.partition])  # what a restore starts from: all written
        return super().persisted_offset(tp)

    async def on_rebalance(
        self, assigned: set[TP], revoked: set[TP], newly_assigned: set[TP], generation_id: int = 0
    ) -> None:
        self._settled = False
        self.write_back.write()  # before any partition is closed, restored or recovered
        await super().on_rebalance(assigned, revoked, newly_assigned, generation_id)

    async def stop(self) -> None:
        self.write_back.write()
        await super().stop()

    def reset_state(self) -> None:
        self.write_back.forget()
        super().reset_state()

    def restore_start(self, number: int) -> int:
        """A partition's DB survives restarts: read only what follows its persisted offset."""
        offset = self.persisted_offset(TP(self.table.changelog_topic_name, number))
        return BEGINNING if offset is None else offset + 1

    def partition(self, number: int) -> MutableMapping[bytes, bytes]:
        return RdictPartition(self._db_for_partition(number), self, number)

    def apply_changelog_batch(self, batch: Any, to_key: Any, to_value: Any) -> None:
        events = list(batch)
        # recovery's records are newer than what is pending: that is written first
        self.write_back.write({event.message.partition for event in events})
        super().apply_changelog_batch(events, to_key, to_value)
        self._recovered({event.message.partition for event in events})

    async def on_recovery_completed(self, active_tps: set[TP], standby_tps: set[TP]) -> None:
        await super().on_recovery_completed(active_tps, standby_tps)
        self._notify(active_tps, standby_tps)
        self._settled = True


def require_store(url: str) -> None:
    """Stop start-up, naming the setting and the extra, when the store's driver is missing
    (Faust would fail later, and vaguely, inside its recovery)."""
    if url.startswith(ROCKSDICT) and importlib.util.find_spec("rocksdict") is None:
        raise SettingsError(
            "ENGAGEMENT_STORE",
            "rocksdict:// needs the rocksdb extra: pip install 'engagement-stream[rocksdb]' "
            "(or ENGAGEMENT_STORE=memory://)",
        )


class StateTable(faust.Table):  # type: ignore[type-arg]
    """A raw-bytes table whose store is :class:`MemoryStore` or :class:`RocksStore`.

    ``on_partitions`` hears which partitions are active and standby after each recovery;
    ``restorer`` reads a changelog in bulk. Both are required: without them a rebalance would
    restore nothing and tell nobody. ``write_back``: (seconds, most states) a RocksDB store's
    durable writes may wait (:mod:`streams.worker.write_back`; 0 seconds: written through).
    """

    def __init__(
        self,
        *args: Any,
        on_partitions: PartitionsChanged,
        restorer: Restorer,
        write_back: tuple[float, int] = (0.0, 0),
        **kwargs: Any,
    ) -> None:
        self._on_partitions = on_partitions
        self._restorer = restorer
        self._write_back = write_back
        super().__init__(*args, **kwargs)

    def _new_store_by_url(self, url: Any) -> Any:
        scheme = str(url).split(":", 1)[0]
        cls = MemoryStore if scheme == "memory" else RocksStore
        store = cls(
            str(url).replace("rocksdict://", "rocksdb://"),
            self.app,
            self,
            table_name=self.name,
            key_type=self.key_type,
            key_serializer=self.key_serializer,
            value_serializer=self.value_serializer,
            value_type=self.value_type,
            loop=self.loop,
            options=dict(self.options or {}),
        )
        store.on_partitions, store.restorer = self._on_partitions, self._restorer
        if isinstance(store, RocksStore):
            store.write_back.interval_s, store.write_back.max_keys = self._write_back
        return store

    @property
    def store(self) -> MemoryStore | RocksStore:
        return cast(MemoryStore | RocksStore, self.data)

    def partition_store(self, number: int) -> MutableMapping[bytes, bytes]:
        return self.store.partition(number)

    def persist_offset(self, number: int, offset: int) -> None:
        """Record that the changelog up to ``offset`` is in the local store, so neither a
        rebalance nor (RocksDB) a restart reads it again (RocksDB: once the states it covers
        are written back)."""
        store = self.store
        if isinstance(store, RocksStore):
            store.persist_after_writes(number, offset)
        else:
            store.set_persisted_offset(TP(self.changelog_topic_name, number), offset)
