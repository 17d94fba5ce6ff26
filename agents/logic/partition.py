"""One owned partition's state as the engine sees it: the durable store under two overlays.

Changed states wait in ``dirty`` until the runtime takes them for the changelog, then in
``flushing`` until Kafka has them; only then are they written to the store, so the store never
holds a state whose changelog record could still be lost.

Under both overlays, ``cache`` keeps the durable values read or written lately (a RocksDB read
from Python costs ~25x a dict's): written through by :func:`mark_durable`, the only writer of
an owned partition's store (recovery writes a partition before it is owned, or makes the
runtime rebuild it, with a new, empty cache), so it never differs from the store.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from itertools import islice

from agents.logic.aggregates import Aggregates, Snapshot, snapshot
from agents.logic.engine_types import EngineConfig
from agents.logic.funnel_counts import FunnelCounts
from agents.logic.meta import META_KEY, Meta, decode_meta
from agents.logic.returns import (
    COUNTS_PREFIX,
    RETURNS_KEY,
    ReturnCounts,
    decode_returns,
    restored_counts,
)
from agents.logic.state import decode
from agents.logic.timers import DeadlineIndex
from agents.logic.walk import next_due_ms
from schemas.errors import StateDecodeError

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
    funnel_counts: FunnelCounts = field(default_factory=FunnelCounts)  # funnel gauges
    dirty: dict[bytes, bytes | None] = field(default_factory=dict)  # changed, not yet taken
    flushing: dict[bytes, bytes | None] = field(default_factory=dict)  # taken, in flight
    cache: dict[bytes, bytes | None] = field(default_factory=dict)  # durable, read lately
    cache_limit: int = 0  # most keys in ``cache`` (0: no cache)

    def get(self, key: bytes) -> bytes | None:
        """The newest value of ``key``: pending, in flight, or durable."""
        if key in self.dirty:
            return self.dirty[key]
        if key in self.flushing:
            return self.flushing[key]
        if key in self.cache:
            return self.cache[key]
        value = self.store.get(key)
        if self.cache_limit:
            self.remember(key, value)
        return value

    def remember(self, key: bytes, value: bytes | None) -> None:
        """Keep the durable ``value`` of ``key`` (``None``: absent) in the cache; a full cache
        first drops its older half (insertion order; one pass per half, where evicting one key
        at a time from the front of a dict rescans the deleted ones)."""
        cache = self.cache
        if key not in cache and len(cache) >= self.cache_limit:
            cache = self.cache = dict(islice(cache.items(), len(cache) // 2, None))
        cache[key] = value


def rebuilt(
    number: int,
    store: KVStore,
    in_flight: Mapping[bytes, bytes | None],
    config: EngineConfig,
    n_channels: int,
    *,
    cache_limit: int = 0,
) -> Partition:
    """Partition ``number`` over its recovered ``store``: aggregates, deadline index and funnel
    counts rebuilt from its states, its meta and return-rate records read, and ``in_flight``
    (changes on their way to the changelog) read over the store and kept as its overlay, so
    their acknowledgement still lands in the store and in the aggregates. Its cache holds
    up to ``cache_limit`` durable values, and starts empty."""
    calendar, agg, index = config.calendar, Aggregates(), DeadlineIndex()
    meta = Meta(lapsed=[0] * n_channels, reactivated=[0] * n_channels)
    returns, counts, funnels = ReturnCounts(), FunnelCounts(), config.fold.funnels
    legacy: ReturnCounts | None = None  # an earlier release's single record
    for key, raw in overlaid(store, in_flight):
        try:
            if key == META_KEY:
                meta = decode_meta(raw, n_channels, config.source_timeout_ms)
                continue
            if key.startswith(COUNTS_PREFIX):
                returns.load_record(key, raw)
                continue
            if key == RETURNS_KEY:
                legacy = decode_returns(raw)
                continue
            state = decode(raw)
        except StateDecodeError as exc:
            raise StateDecodeError(
                exc.message, version=exc.version, key=key, partition=number
            ) from exc
        agg.add(state, calendar)
        counts.update(None, state, funnels, calendar)
        due = next_due_ms(state, config.fold)
        if due is not None:
            index.add(due, key)
    part = Partition(number, store, agg, index, meta, cache_limit=cache_limit)
    part.flushing.update(in_flight)
    part.funnel_counts = counts
    part.returns = restored_counts(returns, legacy)
    return part


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
        if part.cache_limit:
            for key, value in items:
                if not key.startswith(COUNTS_PREFIX):  # read at recovery only: no cache slot
                    part.remember(key, value)
        flushing = part.flushing
        for key, value in items:
            if flushing.get(key, b"") is value:
                del flushing[key]
    return written
