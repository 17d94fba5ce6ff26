"""Partition-local aggregates: exact counts from which every live gauge is derived.

Each user contributes to a few counters, all a pure function of its state. Its active days
are :func:`counted_days`: the folded ones and those of its deferred events, which count on
their day at once (only their lifecycle effect waits for the clock):

* ``active[d]``: active on day d (DAU).
* ``consecutive[d]``: active on d and on d - 1 (returning; with ``active`` gives the lifecycle).
* ``cohort[c][k << 16 | ch]``: first active day c, channel ch, active on day c + k (retention;
  k=0 is the cohort size).
* ``last_two[L][L2]``: newest two active days, L2 -1 for none (WAU/MAU: active in a window even
  when the newest day is just past "today" because of lateness).
* ``reach[c][(L - c) << 16 | ch]``: newest active day per cohort ("on or after day N" retention).
* ``stages[(stage, ch)]``: users per stage.

The three keyed by more than one number are dicts of dicts of ints, not dicts keyed by tuples:
compiled, a counter bumped under a tuple key cost about 1,190 instructions (the tuple built,
hashed and compared), and the inner dict of a user's cohort is looked up once per update.
:func:`flat_counts` gives them keyed by tuples again. A channel is an index below 2**16 (a
state stores it in one byte), so ``k << 16 | ch`` keeps every (k, ch) apart, a negative k too.

:meth:`Aggregates.update` applies the difference between a user's old and new state, so the
counters equal a rebuild from scratch over the states (:meth:`Aggregates.add`) — that is how a
worker restores them after a restart or a rebalance, from the changelog-backed state table.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from typing import Final, TypeVar

from agents.logic.days import Calendar
from agents.logic.state import Stage, UserState

LIFECYCLE_STATUSES: Final = ("new", "returning", "resurrecting", "dormant")
WINDOWS: Final = (("1d", 1), ("7d", 7), ("30d", 30))


Days = tuple[int, int]  # (bitmap, newest day): bit i is day ``newest - i``
_K = TypeVar("_K")


def counted_days(state: UserState, calendar: Calendar) -> Days:
    """The days a user counts as active on: its folded days and the days of its deferred
    events (:mod:`agents.logic.walk`). A deferred event happened on its day, so it counts in
    DAU, WAU, MAU and retention at once, while its lifecycle effect waits for the clock to pass
    the deadline it jumped; folding it later adds nothing here."""
    days, last = state.days, state.last_day
    for ms, _, _, _ in state.pending:
        day = calendar.day_of(ms)
        if day > last:
            days <<= day - last
            last = day
        days |= 1 << (last - day)
    return days, last


def _day_set(view: Days) -> set[int]:
    days, last = view
    return {last - i for i in range(days.bit_length()) if days >> i & 1}


def _last_two(days: int, last: int) -> tuple[int, int]:
    rest = days >> 1
    if not rest:
        return last, -1
    return last, last - 1 - ((rest & -rest).bit_length() - 1)


@dataclass(slots=True)
class Aggregates:
    """The counters of one partition: plain dicts, read with ``.get(key, 0)`` (a key may hold
    0). Not ``Counter``: an update is a few of them per fold, and an exact dict's get and set
    take the interpreter's and mypyc's fast paths where a subclass's do not (~25 % of
    :meth:`_add_days`)."""

    active: dict[int, int] = field(default_factory=dict)
    consecutive: dict[int, int] = field(default_factory=dict)
    cohort: dict[int, dict[int, int]] = field(default_factory=dict)
    last_two: dict[int, dict[int, int]] = field(default_factory=dict)
    reach: dict[int, dict[int, int]] = field(default_factory=dict)
    stages: dict[tuple[int, int], int] = field(default_factory=dict)

    def add(self, state: UserState, calendar: Calendar, sign: int = 1) -> None:
        """Count (``sign=1``) or un-count (``sign=-1``) every contribution of ``state``."""
        first, ch = calendar.day_of(state.first_ms), state.channel
        view = counted_days(state, calendar)
        days = _day_set(view)
        active, consecutive, cohort = self.active, self.consecutive, _inner(self.cohort, first)
        for day in days:
            active[day] = active.get(day, 0) + sign
            if day - 1 in days:
                consecutive[day] = consecutive.get(day, 0) + sign
            key = (day - first) << _CH_BITS | ch
            cohort[key] = cohort.get(key, 0) + sign
        last, second = _last_two(view[0], view[1])
        _bump(_inner(self.last_two, last), second, sign)
        _bump(_inner(self.reach, first), (view[1] - first) << _CH_BITS | ch, sign)
        _bump(self.stages, (state.stage, ch), sign)

    def update(self, old: UserState | None, new: UserState, calendar: Calendar) -> None:
        """Move the counters from ``old``'s contributions to ``new``'s."""
        if old is None:
            self.add(new, calendar)
            return
        first = calendar.day_of(new.first_ms)
        if first != calendar.day_of(old.first_ms) or new.channel != old.channel:
            self.add(old, calendar, -1)
            self.add(new, calendar)
            return
        if old.pending or new.pending:
            old_view, new_view = counted_days(old, calendar), counted_days(new, calendar)
            if new_view != old_view:
                self._add_days(
                    old_view[0], old_view[1], new_view[0], new_view[1], first=first, ch=new.channel
                )
        elif new.days != old.days or new.last_day != old.last_day:  # the common case, no tuples
            self._add_days(
                old.days, old.last_day, new.days, new.last_day, first=first, ch=new.channel
            )
        if new.stage != old.stage:
            _bump(self.stages, (old.stage, old.channel), -1)
            _bump(self.stages, (new.stage, new.channel), 1)

    def _add_days(
        self, old_days: int, old_last: int, after: int, last: int, *, first: int, ch: int
    ) -> None:
        """Count the days of the bitmap ``after`` (newest day ``last``) that ``old_days``
        (newest ``old_last``) had not, with bit operations (no sets): both bitmaps are aligned
        on ``last``; bit i is that day minus i. Ints, not :data:`Days` pairs: unpacking a
        pair of pairs compiled goes through the iterator protocol (three iterators a call)."""
        shift = last - old_last
        aligned_old = old_days << shift if shift >= 0 else old_days >> -shift
        added = after & ~aligned_old
        active, consecutive = self.active, self.consecutive
        cohort = _inner(self.cohort, first) if added else {}
        while added:
            low = added & -added
            i = low.bit_length() - 1
            added ^= low
            day = last - i
            active[day] = active.get(day, 0) + 1
            if after >> (i + 1) & 1:  # active the day before too
                consecutive[day] = consecutive.get(day, 0) + 1
            if i > 0 and after >> (i - 1) & 1 and not (after & ~aligned_old) >> (i - 1) & 1:
                consecutive[day + 1] = consecutive.get(day + 1, 0) + 1  # the day after was there
            key = (day - first) << _CH_BITS | ch
            cohort[key] = cohort.get(key, 0) + 1
        old_two, new_two = _last_two(old_days, old_last), _last_two(after, last)
        if old_two != new_two:
            _bump(_inner(self.last_two, old_two[0]), old_two[1], -1)
            _bump(_inner(self.last_two, new_two[0]), new_two[1], 1)
        if old_last != last:
            reach = _inner(self.reach, first)
            _bump(reach, (old_last - first) << _CH_BITS | ch, -1)
            _bump(reach, (last - first) << _CH_BITS | ch, 1)

    def prune(self, oldest_day: int) -> None:
        """Forget days before ``oldest_day`` (outside every gauge's reach)."""
        for by_day in (self.active, self.consecutive):
            for day in [d for d in by_day if d < oldest_day]:
                del by_day[day]
        for by_day_of in (self.cohort, self.reach, self.last_two):
            for day in [d for d in by_day_of if d < oldest_day]:
                del by_day_of[day]

    def cohort_users(self, first: int, ch: int, k: int) -> int:
        """Users of cohort ``first`` and channel ``ch`` active on day ``first + k``."""
        inner = self.cohort.get(first)
        return 0 if inner is None else inner.get(k << _CH_BITS | ch, 0)


def _bump(counts: dict[_K, int], key: _K, by: int) -> None:
    counts[key] = counts.get(key, 0) + by


_CH_BITS: Final = 16  # the channel's bits in an inner key of cohort and reach


def _inner(outer: dict[int, dict[int, int]], day: int) -> dict[int, int]:
    """The inner dict of ``day``, made on first use."""
    inner = outer.get(day)
    if inner is None:
        inner = outer[day] = {}
    return inner


def flat_counts(agg: Aggregates) -> dict[str, dict[tuple[int, ...], int]]:
    """The counters keyed by more than one number, keyed by tuples: ``cohort`` and ``reach`` by
    (c, ch, k), ``last_two`` by (L, L2), ``stages`` by (stage, ch) (for tests and tools)."""
    mask = (1 << _CH_BITS) - 1
    flat: dict[str, dict[tuple[int, ...], int]] = {
        name: {
            (c, key & mask, key >> _CH_BITS): n
            for c, inner in by_first.items()
            for key, n in inner.items()
        }
        for name, by_first in (("cohort", agg.cohort), ("reach", agg.reach))
    }
    flat["last_two"] = {
        (last, second): n for last, inner in agg.last_two.items() for second, n in inner.items()
    }
    flat["stages"] = {(stage, ch): n for (stage, ch), n in agg.stages.items()}
    return flat


@dataclass(slots=True)
class Snapshot:
    """Gauge values of one or more partitions; snapshots of partitions add up."""

    active: Counter[str] = field(default_factory=Counter)  # window -> users
    lifecycle: Counter[str] = field(default_factory=Counter)  # status -> users
    stages: Counter[int] = field(default_factory=Counter)  # stage -> users
    # (N, channel index, period) -> cohort users / retained users / retained on-or-after
    cohort: Counter[tuple[int, int, str]] = field(default_factory=Counter)
    retained: Counter[tuple[int, int, str]] = field(default_factory=Counter)
    retained_after: Counter[tuple[int, int, str]] = field(default_factory=Counter)
    winback_lapsed: Counter[int] = field(default_factory=Counter)
    winback_reactivated: Counter[int] = field(default_factory=Counter)
    # return rates by arm (agents.logic.returns): (kind, arm, channel[, window index]) -> users
    return_signalled: Counter[tuple[int, int, int]] = field(default_factory=Counter)
    return_eligible: Counter[tuple[int, int, int, int]] = field(default_factory=Counter)
    return_returned: Counter[tuple[int, int, int, int]] = field(default_factory=Counter)
    return_buckets: Counter[tuple[int, int, int]] = field(default_factory=Counter)
    return_sum_ms: Counter[tuple[int, int]] = field(default_factory=Counter)

    def __iadd__(self, other: Snapshot) -> Snapshot:
        for name in _SNAPSHOT_FIELDS:
            getattr(self, name).update(getattr(other, name))
        return self


# Its counters, by name (not ``__slots__``: compiled by mypyc, the class has none).
_SNAPSHOT_FIELDS: Final = tuple(f.name for f in fields(Snapshot))


def _window_users(last_two: dict[int, dict[int, int]], today: int, width: int) -> int:
    low = today - width + 1
    users = 0
    for last, by_second in last_two.items():
        if low <= last <= today:
            users += sum(by_second.values())
        elif last > today:
            users += sum(n for second, n in by_second.items() if low <= second <= today)
    return users


def snapshot(
    agg: Aggregates, today: int, last_complete: int, retention_days: Sequence[int], n_channels: int
) -> Snapshot:
    """Read the gauges for ``today`` (and the last complete day) off one partition."""
    snap = Snapshot()
    for name, width in WINDOWS:
        snap.active[name] = _window_users(agg.last_two, today, width)
    cohort = agg.cohort_users
    new = sum(cohort(today, ch, 0) for ch in range(n_channels))
    both = agg.consecutive.get(today, 0)
    snap.lifecycle.update(
        {
            "new": new,
            "returning": both,
            "resurrecting": agg.active.get(today, 0) - both - new,
            "dormant": agg.active.get(today - 1, 0) - both,
        }
    )
    for (stage, _), n in agg.stages.items():
        snap.stages[stage] += n
    wanted: dict[int, list[tuple[int, str]]] = {}
    for n_days in retention_days:
        for period, day in (("today", today), ("last_complete", last_complete)):
            wanted.setdefault(day - n_days, []).append((n_days, period))
            for ch in range(n_channels):
                key = (n_days, ch, period)
                snap.cohort[key] = cohort(day - n_days, ch, 0)
                snap.retained[key] = cohort(day - n_days, ch, n_days)
                snap.retained_after[key] += 0
    mask = (1 << _CH_BITS) - 1
    for cohort_day, by_key in agg.reach.items():
        periods = wanted.get(cohort_day)
        if periods is None:
            continue
        for packed, n in by_key.items():
            k, ch = packed >> _CH_BITS, packed & mask
            for n_days, period in periods:
                if k >= n_days:
                    snap.retained_after[(n_days, ch, period)] += n
    return snap


def lapsed_by_channel(agg: Aggregates, n_channels: int) -> list[int]:
    """Users dormant or churned now, per channel (the win-back denominator at day start)."""
    return [
        agg.stages.get((Stage.DORMANT, ch), 0) + agg.stages.get((Stage.CHURNED, ch), 0)
        for ch in range(n_channels)
    ]


def rebuild(states: Iterable[UserState], calendar: Calendar) -> Aggregates:
    """Counters from scratch over a partition's states."""
    agg = Aggregates()
    for state in states:
        agg.add(state, calendar)
    return agg
