"""Funnel gauges of one partition: users per funnel x step x channel x cohort week.

Counted from the user states, like :class:`agents.logic.aggregates.Aggregates`: rebuilt from the
store when a partition is taken over, moved from a user's old contribution to the new one on
every change. So they follow the changelog and add up across workers. A user counts at step k
of a funnel once they reached it (:func:`agents.logic.funnels.reached`); of them, those who also
reached step k+1 (within the window, by definition) converted to the next step. The cohort is
the week (Monday to Sunday, ENGAGEMENT_TIMEZONE) of the user's entry into the funnel; the
channel is the user's acquisition channel.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Final

from agents.logic.days import Calendar
from agents.logic.funnels import Funnel, reached
from agents.logic.state import UserState

# time from one step to the next, histogram upper bounds in seconds (the last bucket is +Inf)
STEP_TIME_BUCKETS_S: Final = (600, 3600, 21_600, 86_400, 172_800, 345_600, 604_800)
# (funnel index, step index, channel index, first day of the cohort week)
Key = tuple[int, int, int, int]


def week_of(day: int) -> int:
    """The Monday on or before ``day`` (days since 1970-01-01, a Thursday)."""
    return day - (day + 3) % 7


def week_label(monday: int) -> str:
    return (date(1970, 1, 1) + timedelta(days=monday)).isoformat()


@dataclass(slots=True)
class FunnelCounts:
    """The counters of one partition (or, added up, of several)."""

    reached: Counter[Key] = field(default_factory=Counter)
    # (funnel, step, bucket index) -> users who went on from step to step + 1 in that time
    step_time: Counter[tuple[int, int, int]] = field(default_factory=Counter)
    step_time_ms: Counter[tuple[int, int]] = field(default_factory=Counter)

    def add(
        self, state: UserState, funnels: tuple[Funnel, ...], calendar: Calendar, sign: int = 1
    ) -> None:
        """Count (``sign=1``) or un-count (``sign=-1``) the user's funnel progress."""
        by_key = {t.key: t for t in state.funnels}
        for f, funnel in enumerate(funnels):
            track = by_key.get(funnel.key)
            times = reached(track.hits, funnel) if track is not None else []
            if not times:
                continue
            week = week_of(calendar.day_of(times[0]))
            for k, ms in enumerate(times):
                self.reached[(f, k, state.channel, week)] += sign
                if k:
                    spent_s = (ms - times[k - 1]) / 1000
                    bucket = sum(1 for b in STEP_TIME_BUCKETS_S if spent_s > b)
                    self.step_time[(f, k - 1, bucket)] += sign
                    self.step_time_ms[(f, k - 1)] += sign * (ms - times[k - 1])

    def update(
        self,
        old: UserState | None,
        new: UserState | None,
        funnels: tuple[Funnel, ...],
        calendar: Calendar,
    ) -> None:
        """Move the counters from ``old``'s contribution to ``new``'s (None: no state)."""
        if not funnels:
            return
        unchanged = old is not None and new is not None and old.funnels == new.funnels
        if unchanged and old is not None and new is not None and old.channel == new.channel:
            return
        if old is not None:
            self.add(old, funnels, calendar, -1)
        if new is not None:
            self.add(new, funnels, calendar)

    def __iadd__(self, other: FunnelCounts) -> FunnelCounts:
        self.reached.update(other.reached)
        self.step_time.update(other.step_time)
        self.step_time_ms.update(other.step_time_ms)
        return self

    def recent(self, today: int, weeks: int) -> FunnelCounts:
        """A copy keeping the cohorts of the last ``weeks`` weeks (bounded gauge labels)."""
        oldest = week_of(today) - 7 * (weeks - 1)
        kept = Counter({k: v for k, v in self.reached.items() if k[3] >= oldest})
        return FunnelCounts(kept, Counter(self.step_time), Counter(self.step_time_ms))
