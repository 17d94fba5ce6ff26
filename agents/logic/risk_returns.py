"""Do users signalled ``churn_risk`` come back less? Return rates of signalled and not signalled
lapsed users, within 7 and 30 days.

For a window of W days and the partition's today D, the reference day is R = D - W - 1, so the
W days after it (R + 1 .. R + W = D - 1) are complete. A user is **eligible** when their last
active day on or before R, L, lies in [R - LOOKBACK_DAYS, R - 1]: inactive on R, active within
the 30 days before. Eligible users fall in one group:

* ``signalled``: their churn_risk mark is dated on day L or later and on or before R (the
  model flagged them in the lapse that R is in);
* ``not_signalled``: no churn_risk mark, one dated before L, or one dated after R with no
  active day in R + 1 .. its day (churn_risk fires once per lapse: no activity since L means
  no earlier flag in this lapse);
* ``unknown``: a mark dated after R with an active day between R and it. The state keeps only
  the user's last churn_risk mark, so a flag before R may have been replaced: such users are
  counted apart rather than guessed.

A user **returns** when they have an active day in R + 1 .. R + W. Marks count whatever their
arm (treatment, holdout, or not delivered): it is the model's call that is judged, though the
treatment's win-back message may bring some of the signalled back (the return rates by arm,
:mod:`agents.logic.returns`, measure that). Everything comes from the active-day bitmap and
the marks in state; the counts are per scan, not kept.

Pure: time is passed in.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Final

from agents.logic.days import Calendar
from agents.logic.state import UserState
from schemas.records import SIGNAL_KINDS

WINDOWS: Final = (7, 30)
LOOKBACK_DAYS: Final = 30
GROUPS: Final = ("signalled", "not_signalled", "unknown")
CHURN_RISK: Final = SIGNAL_KINDS.index("churn_risk")
# (group, window) -> users; RiskReturns holds eligible and returned
Tally = Counter[tuple[str, int]]


def reference_day(today: int, window: int) -> int:
    """The day whose ``window`` following days all ended before ``today``."""
    return today - window - 1


def _any_active(state: UserState, lo: int, hi: int) -> bool:
    """An active day in [lo, hi] (as far as the bitmap reaches)."""
    hi = min(hi, state.last_day)
    if hi < lo:
        return False
    mask = ((1 << (hi - lo + 1)) - 1) << (state.last_day - hi)
    return bool(state.days & mask)


def last_active_by(state: UserState, day: int) -> int | None:
    """The user's last active day on or before ``day`` (None if the bitmap has none)."""
    if state.last_day <= day:
        return state.last_day
    rest = state.days >> (state.last_day - day)
    if not rest:
        return None
    return day - ((rest & -rest).bit_length() - 1)


def signal_day(state: UserState, calendar: Calendar) -> int | None:
    """The calendar day of the user's churn_risk mark, if any."""
    for kind, _arm, _channel, at, _back in state.marks:
        if kind == CHURN_RISK:
            return calendar.day_of(at)
    return None


def classify(
    state: UserState, flagged: int | None, reference: int, window: int
) -> tuple[str, bool] | None:
    """(group, returned within ``window`` days of ``reference``) for an eligible user, None
    for the others; ``flagged``: the day of their churn_risk mark or None."""
    last = last_active_by(state, reference)
    if last is None or not reference - LOOKBACK_DAYS <= last < reference:
        return None
    if flagged is None or flagged < last:
        group = "not_signalled"
    elif flagged <= reference:
        group = "signalled"
    elif _any_active(state, reference + 1, flagged):
        group = "unknown"
    else:
        group = "not_signalled"
    return group, _any_active(state, reference + 1, reference + window)


class RiskReturns:
    """Eligible and returned users by (group, window), summed over partitions."""

    def __init__(self) -> None:
        self.eligible: Tally = Counter()
        self.returned: Tally = Counter()

    def add(self, states: Iterable[UserState], calendar: Calendar, today: int) -> None:
        """Count a partition's users at its ``today``."""
        for state in states:
            self._count(state, calendar, today)

    def passing(
        self, states: Iterable[UserState], calendar: Calendar, today: int
    ) -> Iterator[UserState]:
        """Count the users as another scan reads them (one pass, nothing held)."""
        for state in states:
            self._count(state, calendar, today)
            yield state

    def _count(self, state: UserState, calendar: Calendar, today: int) -> None:
        flagged = signal_day(state, calendar)
        for window in WINDOWS:
            seen = classify(state, flagged, reference_day(today, window), window)
            if seen is not None:
                self.eligible[(seen[0], window)] += 1
                self.returned[(seen[0], window)] += seen[1]
