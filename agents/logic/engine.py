"""The activity and lifecycle stages for the partitions one worker owns, without Faust.

The agents hand it batches of canonical events and clock ticks; it keeps each partition's user
states, aggregates and deadline index in step and returns the signals to deliver. Changed
states collect in a per-partition overlay: :meth:`Engine.take_changes` hands them out for the
changelog, and only :meth:`Engine.mark_durable`, called once Kafka has them, writes them to the
local store. So the store never holds a state whose changelog record (or signal) could still be
lost, and a restart replays from a consistent point. Time is always passed in.

Per partition it also keeps a small meta record (:mod:`agents.logic.meta`: event-time watermark,
the current day and the win-back counters of that day) under a reserved key of the same store,
so it travels through the same changelog as the user states and is recovered with them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from operator import attrgetter
from typing import Any

from agents.logic.aggregates import Snapshot, lapsed_by_channel
from agents.logic.engine_types import EngineConfig, Output
from agents.logic.fold import row_of
from agents.logic.freshness import frontier_now, is_stale, observe_frontier
from agents.logic.funnel_counts import FunnelCounts
from agents.logic.holdout import arms_for
from agents.logic.meta import META_KEY, encode_meta
from agents.logic.partition import KVStore, Partition, mark_durable, partitions_snapshot, rebuilt
from agents.logic.returns import Return
from agents.logic.signals import build_signal
from agents.logic.state import UserState, decode, encode, header_deadline_ms
from agents.logic.walk import KIND_INDEX, Fired, Walk, next_due_ms
from agents.logic.watermarks import SourceWatermarks
from schemas.records import Activity, EventLike


class Engine:
    """All partitions one worker owns."""

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self.partitions: dict[int, Partition] = {}
        self._n_channels = len(config.signals.channels)

    # -- ownership ---------------------------------------------------------------------------
    def assign(
        self, number: int, store: KVStore, in_flight: Mapping[bytes, bytes | None] | None = None
    ) -> Partition:
        """Take over a partition whose store is recovered (:func:`rebuilt`: aggregates, index
        and counters from its states; ``in_flight`` changes read over the store and kept as
        its overlay). A stored value that cannot be decoded raises :class:`StateDecodeError`
        naming the partition and key, and the partition is not taken over."""
        config = self.config
        part = rebuilt(
            number, store, in_flight or {}, config, self._n_channels, cache_limit=config.state_cache
        )
        self.partitions[number] = part
        return part

    def revoke(self, number: int) -> None:
        self.partitions.pop(number, None)

    # -- clock -------------------------------------------------------------------------------
    def now_ms(self, wall_ms: int) -> int:
        """The worker's now for gauges and lookups: wall time, or the newest watermark of the
        owned partitions."""
        if self.config.clock == "wall":
            return wall_ms
        return max((p.meta.watermark_ms for p in self.partitions.values()), default=0)

    def partition_now(self, part: Partition, wall_ms: int) -> int:
        """When deadlines fire on ``part``: wall time (capped by the partition's input
        frontier, :mod:`agents.logic.frontier`), or that partition's own watermark.

        Each partition advances on the clocks carried in its own records (ingest broadcasts
        them to idle partitions too), never on another partition's: a partition that is behind
        must not fire deadlines for users whose later events it has not read yet.
        """
        if self.config.clock == "event":
            return part.meta.watermark_ms
        return frontier_now(part.meta.frontiers, wall_ms) if self.config.frontier else wall_ms

    def observe_watermark(
        self, number: int, watermark_ms: int, source: str = "", wall_ms: int = 0
    ) -> None:
        """Advance a partition's event clock: with a ``source``, to the minimum over the live
        sources (see :mod:`agents.logic.watermarks`); without, straight to ``watermark_ms``."""
        part = self.partitions.get(number)
        if part is None:
            return
        meta = part.meta
        if source:
            if meta.sources is None:
                meta.sources = SourceWatermarks(self.config.source_timeout_ms, meta.watermark_ms)
            watermark_ms = meta.sources.observe(source, watermark_ms, wall_ms)
        meta.watermark_ms = max(meta.watermark_ms, watermark_ms)

    def observe_frontier(self, number: int, source: str, frontier_ms: int, wall_ms: int) -> None:
        """``source`` has read all its input up to ``frontier_ms`` (wall ms)."""
        part = self.partitions.get(number)
        if part is not None:
            part.meta.frontiers = observe_frontier(
                part.meta.frontiers, source, frontier_ms, wall_ms, self.config.source_timeout_ms
            )

    # -- activity ----------------------------------------------------------------------------
    def process(
        self,
        number: int,
        events: Iterable[EventLike],
        wall_ms: int,
        watermark_ms: int = 0,
        source: str = "",
    ) -> Output:
        """Fold a batch of one partition's events, then fire whatever became due.

        ``watermark_ms`` and ``source`` come from the batch's header (ingest). Without a source
        (the direct mode, tests) the partition's own newest event time minus the lateness
        advances its clock too. An event is late if it is older than the clock before the
        batch; the batch is folded with the clock as it stands after it (:mod:`agents.logic.walk`
        defers an event that jumps past a deadline the clock has not passed).
        """
        out = Output()
        part = self.partitions[number]
        by_user: dict[str, list[Activity]] = {}
        newest = 0
        fold_cfg = self.config.fold
        steps = fold_cfg.property_steps if fold_cfg.funnels else None
        for event in events:
            row = row_of(event, steps)  # compiled, a row's fields are tuple items, not lookups
            mine = by_user.get(row.user_id)
            if mine is None:  # not setdefault(user, []): that makes a list for every event
                by_user[row.user_id] = [row]
            else:
                mine.append(row)
            newest = max(newest, row.timestamp_ms)
            out.events += 1
        out.newest_ms = newest
        now = out.clock_ms = self.partition_now(part, wall_ms)
        late_before = now if self.config.clock == "event" else wall_ms - self.config.lateness_ms
        if source:
            self.observe_watermark(number, watermark_ms, source, wall_ms)
        else:
            self.observe_watermark(number, max(watermark_ms, newest - self.config.lateness_ms))
        settle = self.partition_now(part, wall_ms)
        for user_id, user_events in by_user.items():
            self._fold_user(
                part,
                user_id,
                user_events,
                settle=settle,
                late_before=late_before,
                wall_ms=wall_ms,
                out=out,
            )
        self._advance_partition(part, settle, wall_ms, out)
        return out

    def _fold_user(
        self,
        part: Partition,
        user_id: str,
        events: list[Activity],
        *,
        settle: int,
        late_before: int,
        wall_ms: int,
        out: Output,
    ) -> None:
        """Fold one user's events of a batch in event-time order (see :class:`Walk`)."""
        cfg = self.config
        key = user_id.encode()
        raw = part.get(key)
        old = decode(raw) if raw is not None else None
        arms = arms_for(user_id, cfg.holdout_salt, cfg.holdout_share)
        walk = Walk(old.copy() if old is not None else None, settle, cfg.fold, cfg.lifecycle, arms)
        if len(events) > 1 and not _in_time_order(events):
            events.sort(key=attrgetter("timestamp_ms"))
        for event in events:
            if event.timestamp_ms < late_before:
                out.late += 1
            walk.add(event)
        state = walk.finish()
        out.duplicates += walk.duplicates
        if walk.changed:
            self._commit(
                part,
                key,
                user_id,
                old=old,
                state=state,
                fired=walk.fired,
                returns=walk.returns,
                wall_ms=wall_ms,
                out=out,
            )

    # -- deadlines ---------------------------------------------------------------------------
    def tick(self, wall_ms: int) -> Output:
        """Fire every deadline that is due on every owned partition."""
        out = Output()
        for part in list(self.partitions.values()):
            self._advance_partition(part, self.partition_now(part, wall_ms), wall_ms, out)
        return out

    def _advance_partition(self, part: Partition, now: int, wall_ms: int, out: Output) -> None:
        if now <= 0:
            return
        calendar, meta = self.config.calendar, part.meta
        today = calendar.day_of(now)
        if meta.today == 0:
            self._roll_day(part, today)
        while meta.today < today:
            self._fire_due(part, calendar.start_of(meta.today + 1) - 1, wall_ms, out)
            self._roll_day(part, meta.today + 1)
        self._fire_due(part, now, wall_ms, out)

    def _roll_day(self, part: Partition, day: int) -> None:
        meta = part.meta
        meta.today = day
        part.meta_changed = True
        meta.lapsed = lapsed_by_channel(part.aggregates, self._n_channels)
        meta.reactivated = [0] * self._n_channels
        part.aggregates.prune(day - self.config.aggregate_days)
        part.returns.prune(day)

    def _fire_due(self, part: Partition, now: int, wall_ms: int, out: Output) -> None:
        cfg = self.config
        for key in part.index.pop_due(now):
            raw = part.get(key)
            if raw is None:
                continue
            later = header_deadline_ms(raw)
            if later is not None and later > now:  # the deadline moved since the entry was made
                part.index.add(later, key)
                continue
            old = decode(raw)
            due = next_due_ms(old, cfg.fold)
            if due is None:
                continue
            if due > now:
                part.index.add(due, key)
                continue
            user_id = key.decode()
            arms = arms_for(user_id, cfg.holdout_salt, cfg.holdout_share)
            walk = Walk(old.copy(), now, cfg.fold, cfg.lifecycle, arms)
            state = walk.finish()
            out.duplicates += walk.duplicates
            self._commit(
                part,
                key,
                user_id,
                old=old,
                state=state,
                fired=walk.fired,
                returns=walk.returns,
                wall_ms=wall_ms,
                out=out,
                rearm=True,
            )

    # -- shared ------------------------------------------------------------------------------
    def _commit(
        self,
        part: Partition,
        key: bytes,
        user_id: str,
        *,
        old: UserState | None,
        state: UserState | None,
        fired: list[Fired],
        returns: list[Return],
        wall_ms: int,
        out: Output,
        rearm: bool = False,
    ) -> None:
        """Emit signals, keep aggregates and index in step, store and log the new state
        (``None``: forgotten).

        ``rearm``: the caller popped the user's index entry, so one is added whatever the
        deadline; otherwise only a deadline that moved earlier needs a new entry.
        """
        cfg = self.config
        delivered, skipped = self._emit(part, key, user_id, fired, wall_ms=wall_ms, out=out)
        if delivered or returns or skipped:
            part.returns.record(
                delivered,
                returns,
                skipped,
                state=state,
                calendar=cfg.calendar,
                channels=cfg.signals.channels,
                today=part.meta.today,
            )
        part.funnel_counts.update(old, state, cfg.fold.funnels, cfg.calendar)
        if state is None:
            if old is not None:
                part.aggregates.add(old, cfg.calendar, -1)
            part.dirty[key] = None
            return
        part.aggregates.update(old, state, cfg.calendar)
        due = next_due_ms(state, cfg.fold)
        old_due = next_due_ms(old, cfg.fold) if old is not None else None
        if due is not None and (rearm or old_due is None or due < old_due):
            part.index.add(due, key)
        value = encode(state)
        part.dirty[key] = value

    def _emit(
        self,
        part: Partition,
        key: bytes,
        user_id: str,
        fired: list[Fired],
        *,
        wall_ms: int,
        out: Output,
    ) -> tuple[list[dict[str, Any]], list[tuple[int, int]]]:
        """The signals of ``fired`` into ``out``: those delivered, and the (kind index, at ms)
        of those suppressed as stale (:mod:`agents.logic.freshness`). A suppressed signal is
        not built: after an outage most of a backlog's signals can be."""
        cfg = self.config
        reactivated = part.meta.reactivated
        delivered: list[dict[str, Any]] = []
        skipped: list[tuple[int, int]] = []
        now = part.meta.watermark_ms if out.clock_ms is None else out.clock_ms
        now = wall_ms if cfg.clock == "wall" else now
        for transition, at_state in fired:
            if transition.kind == "reactivated" and 0 <= at_state.channel < len(reactivated):
                reactivated[at_state.channel] += 1
            if is_stale(transition.at_ms, now, cfg.signal_max_age_ms):
                out.suppressed[transition.kind] = out.suppressed.get(transition.kind, 0) + 1
                skipped.append((KIND_INDEX[transition.kind], transition.at_ms))
                continue
            signal = build_signal(
                user_id,
                at_state,
                transition,
                config=cfg.lifecycle,
                context=cfg.signals,
                horizon=cfg.fold.horizon_days,
                processed_ms=wall_ms,
            )
            out.signals.append((transition.kind, key, signal))
            delivered.append(signal)
        return delivered, skipped

    def take_changes(self) -> list[tuple[int, bytes, bytes | None]]:
        """Changed states (coalesced: the newest value per key) and each touched partition's
        meta record, for the changelog; they stay readable until :meth:`mark_durable`."""
        changes: list[tuple[int, bytes, bytes | None]] = []
        for part in self.partitions.values():
            if not part.dirty and not part.meta_changed:
                continue
            part.dirty[META_KEY] = encode_meta(part.meta)
            part.meta_changed = False
            part.dirty.update(part.returns.take_records())  # the counters changed, last
            part.flushing.update(part.dirty)
            changes.extend((part.number, key, value) for key, value in part.dirty.items())
            part.dirty = {}
        return changes

    def mark_durable(self, changes: list[tuple[int, bytes, bytes | None]]) -> set[int]:
        """Kafka has ``changes``: write them to the local stores; returns the partitions
        written (see :func:`agents.logic.partition.mark_durable`)."""
        return mark_durable(self.partitions, changes)

    def snapshot(self, wall_ms: int) -> tuple[Snapshot, int]:
        """Gauges summed over the owned partitions, and the day they describe."""
        now = self.now_ms(wall_ms)
        return partitions_snapshot(self.partitions.values(), now, self.config, self._n_channels)

    def funnel_snapshot(self, wall_ms: int) -> FunnelCounts:
        """Funnel gauges summed over the owned partitions, cohorts of the kept days only."""
        total = FunnelCounts()
        for part in self.partitions.values():
            total += part.funnel_counts
        today = self.config.calendar.day_of(self.now_ms(wall_ms))
        return total.recent(today, -(-self.config.aggregate_days // 7))

    def user(self, user_id: str) -> UserState | None:
        key = user_id.encode()
        for part in self.partitions.values():
            raw = part.get(key)
            if raw is not None:
                return decode(raw)
        return None


def _in_time_order(events: list[Activity]) -> bool:
    """Already sorted by event time, as a user's events of a batch mostly are: the stable sort
    would change nothing (compiled, its key calls cost 2,400 instructions a user)."""
    previous = events[0].timestamp_ms
    for event in events:
        ms = event.timestamp_ms
        if ms < previous:
            return False
        previous = ms
    return True
