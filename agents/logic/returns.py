"""Return rates by holdout arm: who was signalled, and who came back within 1, 7 and 30 days.

A signalled user **returns within N days** when they have a valid event with event time in
(signal time, signal time + N days] (ARCHITECTURE.md, "Funnels, holdouts and the live model").
Each user's state keeps its last signal of each kind (:data:`agents.logic.state.Mark`: kind,
arm, channel, signal time, first return time); :func:`observe_activity` finds the returns an
event makes, and :class:`ReturnCounts` counts signals and returns per partition, keyed by the
signal's calendar day, so that a window is only reported once it has closed for every signal it
counts: the denominator of "returned within N days" is the signals of days d with d + N < today
(the window of a signal on day d ends before midnight of day d + N + 1), the numerator those of
them that returned within N days. Days older than :data:`KEEP_DAYS` are folded into one settled
total. The counts live in reserved keys of the partition's store, one record per counter
(:func:`count_key`, under :data:`COUNTS_PREFIX`), so they travel through the changelog with the
states that produced them and add up across workers, and a group of records carries only the
counters it changed. (Releases before this one kept them all in one record, :data:`RETURNS_KEY`,
rewritten whole with every change: ~17 KB per partition and group after a month of signals. It
is still read, and replaced by the per-counter records the next time the partition changes.)

A signal that was decided but not delivered (older than ENGAGEMENT_SIGNAL_MAX_AGE) is marked
:data:`NOT_DELIVERED` and counts nowhere. A late event that lands between a signal and the
return already counted moves the return earlier (the counts follow). A user has one mark per
kind: a late event for a signal already replaced by a newer one of its kind is not seen.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from agents.logic.aggregates import Snapshot
from agents.logic.days import DAY_MS, Calendar
from agents.logic.state import UserState
from schemas.errors import StateDecodeError
from schemas.records import SIGNAL_KINDS

RETURNS_KEY: Final = b"\x00returns"  # every counter in one record: written by earlier releases
COUNTS_PREFIX: Final = b"\x00returns/"  # then a table letter and the counter's key, comma-separated
_TABLES: Final = b"srbm"  # signalled, returned, buckets, sum_ms: ReturnCounts' counters in order
WINDOW_DAYS: Final = (1, 7, 30)
# time-to-return histogram buckets (upper bounds, seconds); the last bucket is +Inf
RETURN_BUCKETS_S: Final = (3600, 21_600, 86_400, 172_800, 259_200, 604_800, 1_209_600, 2_592_000)
NOT_DELIVERED: Final = 2  # arm code of a mark whose signal was suppressed
ARM_CODES: Final = {"treatment": 0, "holdout": 1}
KEEP_DAYS: Final = max(WINDOW_DAYS) + 2  # signal days kept apart; older ones are settled
SETTLED: Final = 0  # the day key of signals whose every window has closed

# (kind, arm, channel, signal ms, previous return ms or 0, new return ms)
Return = tuple[int, int, int, int, int, int]


def mark_signal(state: UserState, kind: int, arm: int, at_ms: int) -> None:
    """Remember ``kind``'s signal at ``at_ms`` as the user's last of that kind."""
    state.marks = [m for m in state.marks if m[0] != kind]
    state.marks.append((kind, arm, state.channel, at_ms, 0))
    state.marks.sort()


def unmark(state: UserState, kind: int, at_ms: int) -> None:
    """The signal of ``kind`` at ``at_ms`` was not delivered: it counts nowhere."""
    state.marks = [
        (k, NOT_DELIVERED, ch, at, back) if (k, at) == (kind, at_ms) else (k, arm, ch, at, back)
        for k, arm, ch, at, back in state.marks
    ]


def observe_activity(state: UserState, ms: int) -> list[Return]:
    """An event at ``ms``: the returns it makes (the first event after a signal, or an earlier
    one than the return seen so far)."""
    found: list[Return] = []
    marks = state.marks
    for i, (kind, arm, channel, at, back) in enumerate(marks):
        if at < ms and (back == 0 or ms < back):
            marks[i] = (kind, arm, channel, at, ms)
            if arm != NOT_DELIVERED:
                found.append((kind, arm, channel, at, back, ms))
    return found


def _bucket(delta_ms: int) -> int:
    for i, bound in enumerate(RETURN_BUCKETS_S):
        if delta_ms <= bound * 1000:
            return i
    return len(RETURN_BUCKETS_S)


@dataclass(slots=True)
class ReturnCounts:
    """One partition's signal and return counts (see the module docstring)."""

    # exact dicts, not Counters: compiled code gets and sets them with dict primitives, where a
    # Counter is a generic object whose missing key calls Counter.__missing__ in Python
    signalled: dict[tuple[int, int, int, int], int] = field(default_factory=dict)
    returned: dict[tuple[int, int, int, int, int], int] = field(default_factory=dict)
    buckets: dict[tuple[int, int, int], int] = field(default_factory=dict)  # not cumulative
    sum_ms: dict[tuple[int, int], int] = field(default_factory=dict)
    # (table index in _TABLES, key) of the counters changed since take_records, in order
    touched: dict[tuple[int, tuple[int, ...]], None] = field(default_factory=dict, compare=False)
    legacy: bool = field(default=False, compare=False)  # read from RETURNS_KEY: delete it

    def record(
        self,
        delivered: Sequence[dict[str, Any]],
        returns: Sequence[Return],
        skipped: Sequence[tuple[int, int]],
        *,
        state: UserState | None,
        calendar: Calendar,
        channels: Sequence[str],
        today: int,
    ) -> None:
        """Count one user's step: the signals delivered (their JSON), the returns found, and
        the signals not delivered (``(kind index, at ms)``: unmarked, their returns dropped)."""
        for kind, at in skipped:
            if state is not None:
                unmark(state, kind, at)
        gone = set(skipped)
        for signal in delivered:
            channel = signal["channel"]
            self.count_signal(
                SIGNAL_KINDS.index(signal["kind"]),
                ARM_CODES[signal["arm"]],
                channels.index(channel) if channel in channels else 0,
                calendar.day_of(signal["event_time_ms"]),
                today,
            )
        for ret in returns:
            if (ret[0], ret[3]) not in gone:
                self.count_return(ret, calendar.day_of(ret[3]), today)

    def count_signal(self, kind: int, arm: int, channel: int, day: int, today: int) -> None:
        if arm != NOT_DELIVERED:
            key = (kind, arm, channel, _day_key(day, today))
            self.signalled[key] = self.signalled.get(key, 0) + 1
            self.touched[(0, key)] = None

    def count_return(self, ret: Return, day: int, today: int) -> None:
        """``day``: the calendar day of the signal."""
        kind, arm, channel, at, before, back = ret
        key = _day_key(day, today)
        touched, counts, buckets, sum_ms = self.touched, self.returned, self.buckets, self.sum_ms
        for w, n_days in enumerate(WINDOW_DAYS):
            limit = n_days * DAY_MS
            if back - at <= limit and not (before and before - at <= limit):
                returned = (kind, arm, channel, key, w)
                counts[returned] = counts.get(returned, 0) + 1
                touched[(1, returned)] = None
        by_arm = (kind, arm)
        if before:
            earlier = (kind, arm, _bucket(before - at))
            buckets[earlier] = buckets.get(earlier, 0) - 1
            touched[(2, earlier)] = None
            sum_ms[by_arm] = sum_ms.get(by_arm, 0) - (before - at)
        bucket = (kind, arm, _bucket(back - at))
        buckets[bucket] = buckets.get(bucket, 0) + 1
        touched[(2, bucket)] = None
        sum_ms[by_arm] = sum_ms.get(by_arm, 0) + (back - at)
        touched[(3, by_arm)] = None

    def prune(self, today: int) -> None:
        """Fold the signal days older than :data:`KEEP_DAYS` into the settled total (the
        counters moved are touched, so their records follow)."""
        touched = self.touched
        old = [k for k in self.signalled if SETTLED < k[3] < today - KEEP_DAYS]
        for key in old:
            settled = (key[0], key[1], key[2], SETTLED)
            self.signalled[settled] = self.signalled.get(settled, 0) + self.signalled.pop(key)
            touched[(0, key)] = touched[(0, settled)] = None
        old_returns = [k for k in self.returned if SETTLED < k[3] < today - KEEP_DAYS]
        for rkey in old_returns:
            rsettled = (rkey[0], rkey[1], rkey[2], SETTLED, rkey[4])
            self.returned[rsettled] = self.returned.get(rsettled, 0) + self.returned.pop(rkey)
            touched[(1, rkey)] = touched[(1, rsettled)] = None

    def take_records(self) -> list[tuple[bytes, bytes | None]]:
        """The store records of the counters changed since the last call, ``(key, value)``
        (value None: the counter is back at 0, its record deleted); then the deletion of an
        earlier release's single record, once its counts are all written this way."""
        tables = self.tables()
        records: list[tuple[bytes, bytes | None]] = []
        for table, key in self.touched:
            n = tables[table].get(key, 0)
            records.append((count_key(table, key), str(n).encode() if n else None))
        self.touched = {}
        if self.legacy:
            records.append((RETURNS_KEY, None))
            self.legacy = False
        return records

    def load_record(self, key: bytes, raw: bytes) -> None:
        """Read one counter's record (:meth:`take_records`); :class:`StateDecodeError` on
        foreign bytes."""
        try:
            table = _TABLES.index(key[len(COUNTS_PREFIX)])
            ints = tuple(int(part) for part in key[len(COUNTS_PREFIX) + 1 :].split(b","))
            if len(ints) != _KEY_LENGTHS[table]:
                raise ValueError(f"{len(ints)} numbers in a key of {_KEY_LENGTHS[table]}")
            self.tables()[table][ints] = int(raw)
        except (IndexError, ValueError) as exc:
            raise StateDecodeError(f"corrupt return count: {exc}") from None

    def touch_all(self) -> None:
        """Mark every counter changed (their records are all written by the next take)."""
        for table, counts in enumerate(self.tables()):
            for key in counts:
                self.touched[(table, key)] = None

    def tables(self) -> tuple[dict[Any, int], ...]:
        """The counters in the order of their table letters."""
        return (self.signalled, self.returned, self.buckets, self.sum_ms)

    def add_to(self, snap: Snapshot, today: int) -> None:
        """Add the gauges at ``today`` to ``snap``: all signals, and per window the closed ones
        and of those the returned."""
        for (kind, arm, ch, day), n in self.signalled.items():
            snap.return_signalled[(kind, arm, ch)] += n
            for w, n_days in enumerate(WINDOW_DAYS):
                if day + n_days < today:
                    snap.return_eligible[(kind, arm, ch, w)] += n
        for (kind, arm, ch, day, w), n in self.returned.items():
            if day + WINDOW_DAYS[w] < today:
                snap.return_returned[(kind, arm, ch, w)] += n
        snap.return_buckets.update(self.buckets)
        snap.return_sum_ms.update(self.sum_ms)


_KEY_LENGTHS: Final = (4, 5, 3, 2)  # of the keys of each table, in _TABLES' order


def count_key(table: int, key: tuple[int, ...]) -> bytes:
    """The store key of one counter: :data:`COUNTS_PREFIX`, its table's letter, its key."""
    # a list of compiled str(int) calls: map(str, ...) calls str through the iterator protocol
    return COUNTS_PREFIX + _TABLES[table : table + 1] + ",".join([str(k) for k in key]).encode()


def is_counts_key(key: bytes) -> bool:
    """Whether ``key`` holds return counts, not a user's state."""
    return key.startswith(RETURNS_KEY)


def restored_counts(counts: ReturnCounts, legacy: ReturnCounts | None) -> ReturnCounts:
    """A partition's counts: ``counts`` read from its per-counter records, unless an earlier
    release's single record (``legacy``) is there too. That record is deleted in the group
    that writes the per-counter ones, after them, so beside it they can only be a replacement
    cut short: it is the truth, and every counter is written again (those it lacks as 0)."""
    if legacy is None:
        return counts
    legacy.touch_all()
    for table, by_key in enumerate(counts.tables()):
        for key in by_key:
            legacy.touched[(table, key)] = None
    legacy.legacy = True
    return legacy


def _day_key(day: int, today: int) -> int:
    return day if day >= today - KEEP_DAYS else SETTLED


def decode_returns(raw: bytes) -> ReturnCounts:
    """The counts of an earlier release's single record (:data:`RETURNS_KEY`: JSON of the
    four counters as ``[*key, n]`` rows, under ``s``, ``r``, ``b`` and ``ms``);
    :class:`StateDecodeError` on foreign bytes."""
    try:
        data = orjson.loads(raw)
        if data.get("v") != 1:
            raise StateDecodeError(f"return counts version {data.get('v')!r} (this reads 1)")
        return ReturnCounts(
            {(a, b, c, d): n for a, b, c, d, n in data["s"]},
            {(a, b, c, d, e): n for a, b, c, d, e, n in data["r"]},
            {(a, b, c): n for a, b, c, n in data["b"]},
            {(a, b): n for a, b, n in data["ms"]},
        )
    except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError) as exc:
        raise StateDecodeError(f"corrupt return counts: {type(exc).__name__}: {exc}") from None
