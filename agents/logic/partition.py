"""One owned partition's state as the engine sees it: the durable store under two overlays.

Changed states wait in ``dirty`` until the runtime takes them for the changelog, then in
``flushing`` until Kafka has them; only then are they written to the store, so the store never
holds a state whose changelog record could still be lost.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from agents.logic.aggregates import Aggregates, Snapshot, snapshot
from agents.logic.funnel_counts import FunnelCounts
from agents.logic.meta import Meta
from agents.logic.returns import ReturnCounts
from agents.logic.timers import DeadlineIndex

if TYPE_CHECKING:
    from agents.logic.engine import EngineConfig

KVStore = MutableMapping[bytes, bytes]


@dataclass(slots=True)
class Partition:
    number: int
    store: KVStore  # durable: written only after the changelog has the value
    aggregates: Aggregates
    index: DeadlineIndex
    meta: Meta
    meta_changed: bool = False
    returns: ReturnCounts = field(default_factory=ReturnCounts)  # return rates by arm
    returns_changed: bool = False
    funnel_counts: FunnelCounts = field(default_factory=FunnelCounts)  # funnel gauges
    dirty: dict[bytes, bytes | None] = field(default_factory=dict)  # changed, not yet taken
    flushing: dict[bytes, bytes | None] = field(default_factory=dict)  # taken, in flight

    def get(self, key: bytes) -> bytes | None:
        """The newest value of ``key``: pending, in flight, or durable."""
        if key in self.dirty:
            return self.dirty[key]
        if key in self.flushing:
            return self.flushing[key]
        return self.store.get(key)


def overlaid(
    store: KVStore, overlay: Mapping[bytes, bytes | None]
) -> Iterator[tuple[bytes, bytes]]:
    """The items of ``store`` as they read under ``overlay`` (newer values; ``None`` deletes)."""
    for key, value in store.items():
        if key not in overlay:
            yield key, value
    for key, newer in overlay.items():
        if newer is not None:
            yield key, newer


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


def partitions_snapshot(
    partitions: Iterable[Partition], now: int, config: EngineConfig, n_channels: int
) -> tuple[Snapshot, int]:
    """Gauges summed over ``partitions`` at ``now``, and the day they describe (on the wall
    clock a day is complete once the lateness after its end has passed)."""
    calendar = config.calendar
    today = calendar.day_of(now) if now > 0 else 0
    if config.clock == "wall":
        last_complete = calendar.day_of(now - config.lateness_ms) - 1
    else:
        last_complete = today - 1
    total = Snapshot()
    for part in partitions:
        total += snapshot(part.aggregates, today, last_complete, config.retention_days, n_channels)
        part.returns.add_to(total, today)
        if part.meta.today == today:
            total.winback_lapsed.update(dict(enumerate(part.meta.lapsed)))
            total.winback_reactivated.update(dict(enumerate(part.meta.reactivated)))
    return total, today


def mark_durable(
    partitions: Mapping[int, Partition], changes: list[tuple[int, bytes, bytes | None]]
) -> set[int]:
    """Kafka has ``changes``: write them to the local stores (a store with a
    ``write_all(items)`` method gets each partition's changes in one call). Returns the
    partitions written: a partition revoked meanwhile is not, and its store must not be
    told that it holds the changelog up to these changes."""
    by_partition: dict[int, list[tuple[bytes, bytes | None]]] = {}
    for number, key, value in changes:
        by_partition.setdefault(number, []).append((key, value))
    written: set[int] = set()
    for number, items in by_partition.items():
        part = partitions.get(number)
        if part is None:
            continue  # revoked meanwhile; the new owner recovers from the changelog
        write_all_to(part.store, items)
        written.add(number)
        flushing = part.flushing
        for key, value in items:
            if flushing.get(key, b"") is value:
                del flushing[key]
    return written
