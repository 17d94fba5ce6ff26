"""The user-state table: a Faust table whose stores hand each partition to the engine.

Faust still does what it is good at for this table — declaring the compacted changelog topic,
co-assigning its partitions with ``events.by_user``, recovering the store from the changelog
(and standbys) after a restart or rebalance. The hot path bypasses Faust's per-key changelog
send (~250 µs a key): the engine writes the partition's key-value store directly and the
changelog records go out through a confluent-kafka producer, coalesced per batch. The stores
below therefore expose ``partition(n)`` as a plain mutable mapping of bytes to bytes, and tell
the runtime when partitions are recovered or revoked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping
from typing import Any, cast

import faust
from faust.stores import memory as faust_memory
from faust.stores import rocksdb as faust_rocksdb
from faust.types import TP

PartitionsChanged = Callable[[set[int], set[int]], None]  # (active, standby)


class _Listeners:
    """Mixin: call ``on_partitions`` with the active/standby partitions after recovery."""

    on_partitions: PartitionsChanged | None = None
    table: Any

    def _notify(self, active_tps: set[TP], standby_tps: set[TP]) -> None:
        topic = self.table.changelog_topic_name
        if self.on_partitions is not None:
            self.on_partitions(
                {tp.partition for tp in active_tps if tp.topic == topic},
                {tp.partition for tp in standby_tps if tp.topic == topic},
            )


class MemoryStore(_Listeners, faust_memory.Store):  # type: ignore[type-arg]
    """``memory://`` with one dict per partition."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.partitions: dict[int, dict[bytes, bytes]] = {}

    def partition(self, number: int) -> MutableMapping[bytes, bytes]:
        return self.partitions.setdefault(number, {})

    def apply_changelog_batch(self, batch: Any, to_key: Any, to_value: Any) -> None:
        for event in batch:
            message = event.message
            data = self.partition(message.partition)
            if message.value is None:
                data.pop(message.key, None)
            else:
                data[message.key] = message.value

    async def on_recovery_completed(self, active_tps: set[TP], standby_tps: set[TP]) -> None:
        keep = {tp.partition for tp in active_tps | standby_tps}
        for number in [n for n in self.partitions if n not in keep]:
            del self.partitions[number]
        self._notify(active_tps, standby_tps)

    def reset_state(self) -> None:
        self.partitions.clear()


class RdictPartition(MutableMapping[bytes, bytes]):
    """One partition's RocksDB (rocksdict, raw mode) as a mapping, hiding Faust's offset key."""

    __slots__ = ("_db",)

    def __init__(self, db: Any) -> None:
        self._db = db

    def __getitem__(self, key: bytes) -> bytes:
        value = self._db.get(key)
        if value is None:
            raise KeyError(key)
        return value  # type: ignore[no-any-return]

    def get(self, key: bytes, default: Any = None) -> Any:
        value = self._db.get(key)
        return default if value is None else value

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self._db[key] = value

    def __delitem__(self, key: bytes) -> None:
        self._db.delete(key)

    def __iter__(self) -> Iterator[bytes]:
        offset_key = faust_rocksdb.Store.offset_key
        for key in self._db.keys():  # noqa: SIM118
            if key != offset_key:
                yield key

    def items(self) -> Iterator[tuple[bytes, bytes]]:  # type: ignore[override]
        offset_key = faust_rocksdb.Store.offset_key
        for key, value in self._db.items():
            if key != offset_key:
                yield key, value

    def __len__(self) -> int:
        return sum(1 for _ in self)


class RocksStore(_Listeners, faust_rocksdb.Store):
    """``rocksdict://``: Faust's RocksDB store on the rocksdict driver, one DB per partition."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["driver"] = "rocksdict"
        super().__init__(*args, **kwargs)

    def partition(self, number: int) -> MutableMapping[bytes, bytes]:
        return RdictPartition(self._db_for_partition(number))

    async def on_recovery_completed(self, active_tps: set[TP], standby_tps: set[TP]) -> None:
        await super().on_recovery_completed(active_tps, standby_tps)
        self._notify(active_tps, standby_tps)


class StateTable(faust.Table):  # type: ignore[type-arg]
    """A raw-bytes table whose store is :class:`MemoryStore` or :class:`RocksStore`."""

    def _new_store_by_url(self, url: Any) -> Any:
        scheme = str(url).split(":", 1)[0]
        cls = MemoryStore if scheme == "memory" else RocksStore
        return cls(
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

    @property
    def store(self) -> MemoryStore | RocksStore:
        return cast(MemoryStore | RocksStore, self.data)

    def partition_store(self, number: int) -> MutableMapping[bytes, bytes]:
        return self.store.partition(number)

    def persist_offset(self, number: int, offset: int) -> None:
        """Record that the changelog up to ``offset`` is in the local store (RocksDB only),
        so a restart replays only the tail."""
        store = self.store
        if isinstance(store, RocksStore):
            store.set_persisted_offset(TP(self.changelog_topic_name, number), offset)
