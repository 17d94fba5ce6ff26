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
total. The counts live in a reserved key of the partition's store (:data:`RETURNS_KEY`), so they
travel through the changelog with the states that produced them and add up across workers.

A signal that was decided but not delivered (older than ENGAGEMENT_SIGNAL_MAX_AGE) is marked
:data:`NOT_DELIVERED` and counts nowhere. A late event that lands between a signal and the
return already counted moves the return earlier (the counts follow). A user has one mark per
kind: a late event for a signal already replaced by a newer one of its kind is not seen.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from agents.logic.aggregates import Snapshot
from agents.logic.days import DAY_MS, Calendar
from agents.logic.state import UserState
from schemas.errors import StateDecodeError
from schemas.records import SIGNAL_KINDS

RETURNS_KEY = b"\x00returns"
WINDOW_DAYS = (1, 7, 30)
# time-to-return histogram buckets (upper bounds, seconds); the last bucket is +Inf
RETURN_BUCKETS_S = (3600, 21_600, 86_400, 172_800, 259_200, 604_800, 1_209_600, 2_592_000)
NOT_DELIVERED = 2  # arm code of a mark whose signal was suppressed
ARM_CODES = {"treatment": 0, "holdout": 1}
KEEP_DAYS = max(WINDOW_DAYS) + 2  # signal days kept apart; older ones are settled
SETTLED = 0  # the day key of signals whose every window has closed

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

    signalled: Counter[tuple[int, int, int, int]] = field(default_factory=Counter)
    returned: Counter[tuple[int, int, int, int, int]] = field(default_factory=Counter)
    buckets: Counter[tuple[int, int, int]] = field(default_factory=Counter)  # not cumulative
    sum_ms: Counter[tuple[int, int]] = field(default_factory=Counter)

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
            self.signalled[(kind, arm, channel, _day_key(day, today))] += 1

    def count_return(self, ret: Return, day: int, today: int) -> None:
        """``day``: the calendar day of the signal."""
        kind, arm, channel, at, before, back = ret
        key = _day_key(day, today)
        for w, n_days in enumerate(WINDOW_DAYS):
            limit = n_days * DAY_MS
            if back - at <= limit and not (before and before - at <= limit):
                self.returned[(kind, arm, channel, key, w)] += 1
        if before:
            self.buckets[(kind, arm, _bucket(before - at))] -= 1
            self.sum_ms[(kind, arm)] -= before - at
        self.buckets[(kind, arm, _bucket(back - at))] += 1
        self.sum_ms[(kind, arm)] += back - at

    def prune(self, today: int) -> bool:
        """Fold the signal days older than :data:`KEEP_DAYS` into the settled total; True if
        any moved."""
        old = [k for k in self.signalled if SETTLED < k[3] < today - KEEP_DAYS]
        for key in old:
            self.signalled[(*key[:3], SETTLED)] += self.signalled.pop(key)
        old_returns = [k for k in self.returned if SETTLED < k[3] < today - KEEP_DAYS]
        for rkey in old_returns:
            self.returned[(*rkey[:3], SETTLED, rkey[4])] += self.returned.pop(rkey)
        return bool(old or old_returns)

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


def _day_key(day: int, today: int) -> int:
    return day if day >= today - KEEP_DAYS else SETTLED


def encode_returns(counts: ReturnCounts) -> bytes:
    return orjson.dumps(
        {
            "v": 1,
            "s": [[*k, n] for k, n in counts.signalled.items() if n],
            "r": [[*k, n] for k, n in counts.returned.items() if n],
            "b": [[*k, n] for k, n in counts.buckets.items() if n],
            "ms": [[*k, n] for k, n in counts.sum_ms.items() if n],
        }
    )


def decode_returns(raw: bytes) -> ReturnCounts:
    """Inverse of :func:`encode_returns`; :class:`StateDecodeError` on foreign bytes."""
    try:
        data = orjson.loads(raw)
        if data.get("v") != 1:
            raise StateDecodeError(f"return counts version {data.get('v')!r} (this reads 1)")
        return ReturnCounts(
            Counter({(a, b, c, d): n for a, b, c, d, n in data["s"]}),
            Counter({(a, b, c, d, e): n for a, b, c, d, e, n in data["r"]}),
            Counter({(a, b, c): n for a, b, c, n in data["b"]}),
            Counter({(a, b): n for a, b, n in data["ms"]}),
        )
    except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError) as exc:
        raise StateDecodeError(f"corrupt return counts: {type(exc).__name__}: {exc}") from None
