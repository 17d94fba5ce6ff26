"""Stage transitions and deadlines: what a user's state means, and when it will mean more.

Two entry points, both pure with ``now_ms`` passed in:

* :func:`on_activity` after new events were folded into a user's state (returns, recoveries);
* :func:`advance` when the clock passes the user's deadline (at risk, dormant, churned, discard).

Every state carries its next deadline, so the timer index only ever touches users that are due;
the churn-risk deadline is the closed-form moment P(alive) crosses the threshold, so nothing is
polled.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, final

from agents.logic.churn import ModelParams, risk_deadline_T
from agents.logic.days import DAY_MS, Calendar
from agents.logic.state import Deadline, Stage, UserState

_SIGNAL_OF: Final = {
    Stage.AT_RISK: "churn_risk",
    Stage.DORMANT: "dormant",
    Stage.CHURNED: "churned",
    Stage.REACTIVATED: "reactivated",
}
_STAGE_OF: Final = {
    Deadline.AT_RISK: Stage.AT_RISK,
    Deadline.DORMANT: Stage.DORMANT,
    Deadline.CHURNED: Stage.CHURNED,
}
_LIVE: Final = (Stage.NEW, Stage.ACTIVE, Stage.REACTIVATED)
_ISFINITE: Final = math.isfinite  # bound once, as churn's math functions
_NEVER: Final = 2**62  # a churn-risk deadline that never comes
_RISK_OFFSETS_MAX: Final = 1 << 16  # cached (x, t_x) pairs before the cache starts again


@dataclass(frozen=True, slots=True)
class LifecycleConfig:
    calendar: Calendar
    dormant_ms: int
    churned_ms: int
    discard_ms: int
    alive_threshold: float
    params: ModelParams
    risk_on: bool = True  # off: no churn-risk deadlines (a refit put the threshold too high)
    # T* in ms after the first active day (ceiled; _NEVER if it never comes), per (x, t_x): the
    # same for every user with the same counts, so :func:`risk_deadline_ms` computes it once per
    # config. Not an argument: a refit's ``dataclasses.replace`` makes a config with an empty one.
    risk_offsets: dict[int, int] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )


@dataclass(slots=True, init=False)
class Transition:
    """A stage change worth a signal (``kind``) or a discard (``kind == "discard"``).

    ``at_ms`` is when it became true in event time (the deadline, or the returning event);
    ``trigger_ms`` identifies it for the deterministic signal id. ``funnel``: a ``stalled``
    transition's funnel facts (:meth:`agents.logic.funnels.Stall.reasons`).

    Not changed once made. ``__init__`` is written out (``init=False``): the one dataclasses
    generates is interpreted Python even in the compiled core, and a frozen one sets each field
    through ``object.__setattr__`` (1.7 % of the worker's samples, one per signal).
    """

    kind: str
    before: Stage
    after: Stage
    at_ms: int
    trigger_ms: int
    last_ms_before: int
    funnel: Mapping[str, Any] | None

    def __init__(  # noqa: PLR0917 (the fields in order, as the generated __init__ took them)
        self,
        kind: str,
        before: Stage,
        after: Stage,
        at_ms: int,
        trigger_ms: int,
        last_ms_before: int,
        funnel: Mapping[str, Any] | None = None,
    ) -> None:
        self.kind = kind
        self.before = before
        self.after = after
        self.at_ms = at_ms
        self.trigger_ms = trigger_ms
        self.last_ms_before = last_ms_before
        self.funnel = funnel


def model_inputs(state: UserState, calendar: Calendar) -> tuple[int, int, int]:
    """(x, t_x in whole days, start of the first active day in ms)."""
    first_day = calendar.day_of(state.first_ms)
    return state.active_days() - 1, state.last_day - first_day, calendar.start_of(first_day)


def risk_deadline_ms(state: UserState, config: LifecycleConfig) -> int:
    """The instant P(alive) falls below the threshold if the user stays away: T* after the
    start of the first active day, or the last activity itself if T* lies before it (P(alive)
    is below the threshold already; the crossing cannot precede the activity it counts)."""
    x, t_x, origin = model_inputs(state, config.calendar)
    offsets, key = config.risk_offsets, x << 32 | t_x
    offset = offsets.get(key)
    if offset is None:
        t_star = risk_deadline_T(x, float(t_x), config.params, config.alive_threshold)
        offset = math.ceil(t_star * DAY_MS) if _ISFINITE(t_star) else _NEVER
        if len(offsets) >= _RISK_OFFSETS_MAX:
            offsets.clear()
        offsets[key] = offset
    if offset == _NEVER:
        return _NEVER
    return max(origin + offset, state.last_ms)


def schedule(state: UserState, config: LifecycleConfig) -> None:
    """Set the user's next deadline from its stage."""
    stage, last = state.stage, state.last_ms
    if stage in _LIVE:
        dormant = last + config.dormant_ms
        risk = risk_deadline_ms(state, config) if config.risk_on else dormant
        state.deadline, state.deadline_ms = (
            (Deadline.AT_RISK, risk) if risk < dormant else (Deadline.DORMANT, dormant)
        )
    elif stage is Stage.AT_RISK:
        state.deadline, state.deadline_ms = Deadline.DORMANT, last + config.dormant_ms
    elif stage is Stage.DORMANT:
        state.deadline, state.deadline_ms = Deadline.CHURNED, last + config.churned_ms
    else:
        state.deadline, state.deadline_ms = Deadline.DISCARD, last + config.discard_ms


@final
class Before:
    """What :func:`on_activity` needs of a user's state before an event (cheap to take: one
    per folded event). A plain class, not a NamedTuple: a NamedTuple's ``__new__`` is
    interpreted Python even in the compiled core, and taking it was 6 % of the engine's time."""

    __slots__ = ("last_day", "last_ms", "stage", "stage_since_ms")

    def __init__(self, stage: Stage, last_ms: int, last_day: int, stage_since_ms: int) -> None:
        self.stage = stage
        self.last_ms = last_ms
        self.last_day = last_day
        self.stage_since_ms = stage_since_ms

    @staticmethod
    def of(state: UserState) -> Before:
        return Before(state.stage, state.last_ms, state.last_day, state.stage_since_ms)


def on_activity(old: Before | None, state: UserState, config: LifecycleConfig) -> Transition | None:
    """Decide the stage after an event was folded (``old`` is the state before it). The
    caller then reschedules the deadline (:func:`schedule`), once per batch of events.

    A dormant or churned user seen active again (an event newer than its last one) is
    reactivated, even when that event arrives late. An at-risk user with a new active day
    is active again; a new user becomes active on its second active day; a reactivated user
    on its next active day after the return.
    """
    transition = None
    if old is None:
        state.stage, state.stage_since_ms = Stage.NEW, state.first_ms
    elif old.stage in (Stage.DORMANT, Stage.CHURNED) and state.last_ms > old.last_ms:
        transition = Transition(
            "reactivated", old.stage, Stage.REACTIVATED, state.last_ms, old.last_ms, old.last_ms
        )
        state.stage, state.stage_since_ms = Stage.REACTIVATED, state.last_ms
    elif (
        state.last_day > old.last_day
        and (
            old.stage in (Stage.AT_RISK, Stage.NEW)
            or (
                old.stage is Stage.REACTIVATED
                and state.last_day > config.calendar.day_of(old.stage_since_ms)
            )
        )
    ) or (old.stage is Stage.NEW and state.active_days() > 1):
        state.stage, state.stage_since_ms = Stage.ACTIVE, state.last_ms
    return transition


def advance(state: UserState, now_ms: int, config: LifecycleConfig) -> list[Transition]:
    """Apply every deadline that is due at ``now_ms``, in order."""
    transitions: list[Transition] = []
    while state.deadline is not Deadline.NONE and state.deadline_ms <= now_ms:
        at = state.deadline_ms
        if state.deadline is Deadline.DISCARD:
            transitions.append(
                Transition("discard", state.stage, state.stage, at, at, state.last_ms)
            )
            state.deadline = Deadline.NONE
            break
        after = _STAGE_OF[state.deadline]
        transitions.append(Transition(_SIGNAL_OF[after], state.stage, after, at, at, state.last_ms))
        state.stage, state.stage_since_ms = after, at
        schedule(state, config)
    return transitions
