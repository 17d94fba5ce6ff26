"""Calibration of the churn model: predicted against realised active days, by P(alive) band.

The standard check of MBG/NBD models, made continuous: at a reference moment, users are
grouped by their P(alive) band; per band the model's expected repeat active days over the next
``horizon`` days (:func:`agents.logic.churn.expected_active_days`) are summed and compared with
the active days the users then had. In the worker the reference moment is the day ``horizon``
days before today, and both sides come from each user's active-day bitmap
(:func:`summary_before`), so no history beyond the state is needed.

Pure: time is passed in.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from agents.logic.churn import ModelParams, expected_active_days, p_alive
from agents.logic.days import Calendar
from agents.logic.state import UserState

# not Final: mypyc 1.20 leaves a Final tuple of floats unset (NameError when read)
BAND_EDGES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)  # P(alive) bands: [0, .2), ..., [.8, 1]
HORIZON_DAYS: Final = 7
# (x, t_x, T) at the reference moment -> number of users, and their active days after it
Outcomes = dict[tuple[int, float, float], tuple[int, int]]


@dataclass(frozen=True, slots=True)
class Band:
    """One P(alive) band: users in it at the reference moment, their expected repeat active
    days over the horizon, and the ones they had."""

    lower: float
    upper: float
    users: int = 0
    predicted: float = 0.0
    actual: int = 0

    @property
    def label(self) -> str:
        return f"{self.lower:.1f}-{self.upper:.1f}"


def band_index(alive: float, edges: tuple[float, ...] = BAND_EDGES) -> int:
    for i in range(len(edges) - 2):
        if alive < edges[i + 1]:
            return i
    return len(edges) - 2


def calibrate(
    outcomes: Outcomes,
    params: ModelParams,
    horizon: float = HORIZON_DAYS,
    edges: tuple[float, ...] = BAND_EDGES,
) -> list[Band]:
    """Per band: users, predicted and actual repeat active days over ``horizon`` days."""
    users = [0] * (len(edges) - 1)
    predicted = [0.0] * (len(edges) - 1)
    actual = [0] * (len(edges) - 1)
    for (x, t_x, T), (n, after) in outcomes.items():
        i = band_index(p_alive(x, t_x, T, params), edges)
        users[i] += n
        predicted[i] += n * expected_active_days(x, t_x, T, params, horizon)
        actual[i] += after
    return [
        Band(edges[i], edges[i + 1], users[i], predicted[i], actual[i])
        for i in range(len(edges) - 1)
    ]


def summary_before(
    state: UserState, first_day: int, reference: int, horizon: int
) -> tuple[tuple[int, int, int], int] | None:
    """The user's (x, t_x, T) at the end of day ``reference`` (``first_day`` is the user's
    first active day), and their active days in the ``horizon`` days after it; None for a user
    first active after ``reference``. Days that aged out of the bitmap count in x (they are
    older than anything a reference within the horizon can split)."""
    if first_day > reference:
        return None
    before, after, last_before = state.x_extra, 0, first_day
    days, day = state.days, state.last_day
    while days:
        if days & 1:
            if day <= reference:
                before += 1
                last_before = max(last_before, day)
            elif day <= reference + horizon:
                after += 1
        days >>= 1
        day -= 1
    return (before - 1, last_before - first_day, reference - first_day), after


def outcomes_of(
    states: Iterable[UserState], calendar: Calendar, reference: int, horizon: int
) -> Outcomes:
    """Users' summaries at the end of day ``reference`` with their active days in the
    ``horizon`` days after it, compressed."""
    out: Outcomes = {}
    for state in states:
        seen = summary_before(state, calendar.day_of(state.first_ms), reference, horizon)
        if seen is None:
            continue
        (x, t_x, T), after = seen
        key = (x, float(t_x), float(T))
        n, total = out.get(key, (0, 0))
        out[key] = (n + 1, total + after)
    return out
