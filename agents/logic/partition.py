"""One owned partition's state as the engine sees it: the durable store under two overlays.

Changed states wait in ``dirty`` until the runtime takes them for the changelog, then in
``flushing`` until Kafka has them; only then are they written to the store, so the store never
holds a state whose changelog record could still be lost.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass, field

from agents.logic.aggregates import Aggregates
from agents.logic.meta import Meta
from agents.logic.timers import DeadlineIndex

KVStore = MutableMapping[bytes, bytes]


@dataclass(slots=True)
class Partition:
    number: int
    store: KVStore  # durable: written only after the changelog has the value
    aggregates: Aggregates
    index: DeadlineIndex
    meta: Meta
    meta_changed: bool = False
    dirty: dict[bytes, bytes | None] = field(default_factory=dict)  # changed, not yet taken
    flushing: dict[bytes, bytes | None] = field(default_factory=dict)  # taken, in flight

    def get(self, key: bytes) -> bytes | None:
        """The newest value of ``key``: pending, in flight, or durable."""
        if key in self.dirty:
            return self.dirty[key]
        if key in self.flushing:
            return self.flushing[key]
        return self.store.get(key)


def write_all_to(store: KVStore, items: list[tuple[bytes, bytes | None]]) -> None:
    """Puts and deletes (``None``) in one call where the store has ``write_all`` (a RocksDB
    write batch), else one by one."""
    write_all = getattr(store, "write_all", None)
    if write_all is not None:
        write_all(items)
        return
    for key, value in items:
        if value is None:
            store.pop(key, None)
        else:
            store[key] = value
