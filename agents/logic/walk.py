"""One user's events and deadlines taken in event-time order, whatever order they are read in.

By the definitions a user whose next event comes after a deadline passed that deadline (no
activity for the whole delay), then returned. The event clock only knows a deadline passed once
the watermark is past it; until then an event read later may still land before it. So an event
that jumps past the user's deadline while the clock has not reached that deadline is *deferred*:
kept aside in ``UserState.pending`` (its fingerprint, category and channel, not folded into the
state's facts), together with every newer event of the user. When the clock passes the deadline
the deadline fires (dormant, churned, churn risk, or a discard) and the deferred events are
folded in order, the first one yielding the ``reactivated`` of the return. An event read in the
meantime that lands before the deadline (late, but not older than the watermark) is folded at
once and moves the deadline: the deferred events then follow when they no longer jump past it.

So the signals, their triggers and the stages do not depend on batch boundaries or on the order
the events are read in, as long as no event is older than the watermark when it is read (such an
event can only change what has not fired yet). A user with nothing deferred takes the same path
as before: one comparison with the deadline per event.

Deferring holds at most :data:`MAX_PENDING` events per user; beyond that the deadline is taken
as passed (it is far behind the user's newest events by then).

Funnel progress (:mod:`agents.logic.funnels`) is a set of hits, so every event is added to it
as it is read, deferred or not; a funnel window's end is a deadline like the lifecycle's, found
by the same index (:func:`next_due_ms`), and fires a ``stalled`` transition once the clock
passes it. (An event deferred past a discard starts a new life without the old life's funnel
progress: the discard comes long after any window ends.)
"""

from __future__ import annotations

from bisect import insort
from collections.abc import Callable
from typing import Final

from agents.logic.fold import FoldConfig, fold_pending, fold_row, new_state_of, row_pending
from agents.logic.funnels import due_stalls, next_deadline_ms, observe
from agents.logic.lifecycle import Before, LifecycleConfig, Transition, advance, on_activity
from agents.logic.lifecycle import schedule as schedule_deadline
from agents.logic.returns import Return, mark_signal, observe_activity
from agents.logic.state import Deadline, Pending, UserState
from schemas.records import SIGNAL_KINDS, Activity

KIND_INDEX: Final = {kind: i for i, kind in enumerate(SIGNAL_KINDS)}

MAX_PENDING: Final = 1024

# a transition, and the user's state at that moment (what its signal's reasons describe)
Fired = tuple[Transition, UserState]


def next_due_ms(state: UserState, config: FoldConfig) -> int | None:
    """When the user's next deadline of any kind passes (lifecycle or funnel window), if any:
    where the deadline index must hold an entry for the user."""
    due = next_deadline_ms(state.funnels, config.funnels) if state.funnels else None
    if state.deadline is Deadline.NONE:
        return due
    return state.deadline_ms if due is None else min(due, state.deadline_ms)


def _due_by(state: UserState, ms: int) -> bool:
    """Whether the user's next deadline comes at or before ``ms``."""
    return state.deadline_ms <= ms and state.deadline is not Deadline.NONE


class Walk:
    """One user's state brought forward through a batch of events (or a clock tick).

    ``settle``: the clock's now (the partition's watermark after the batch, or wall time):
    deadlines up to it have passed, later ones have not. ``arm``: the user's holdout arm for a
    signal kind (:func:`agents.logic.holdout.arm_of`); each signal is marked in the state with
    it, and ``returns`` collects the returns after those signals (:mod:`agents.logic.returns`).
    """

    __slots__ = (
        "arm",
        "changed",
        "duplicates",
        "fired",
        "fold_cfg",
        "life_cfg",
        "returns",
        "settle",
        "stale",
        "state",
    )

    def __init__(
        self,
        state: UserState | None,
        settle: int,
        fold_cfg: FoldConfig,
        life_cfg: LifecycleConfig,
        arm: Callable[[str], int] | None = None,
    ) -> None:
        self.state = state
        self.arm = arm or _treatment
        self.returns: list[Return] = []
        self.settle = settle
        self.fold_cfg = fold_cfg
        self.life_cfg = life_cfg
        self.fired: list[Fired] = []
        self.duplicates = 0
        self.changed = False
        self.stale = False  # folded since the deadline was last scheduled

    # -- events ------------------------------------------------------------------------------
    def add(self, event: Activity) -> None:
        """Take one event (a user's events in a batch come in event-time order). Its
        property-step matches were found before (by the ingest stage, or
        :func:`agents.logic.fold.row_of`)."""
        ts = event.timestamp_ms
        self._add(event, ts)
        state = self.state
        funnels = self.fold_cfg.funnels
        if (
            state is not None
            and funnels
            and observe(state.funnels, funnels, ts, event.event_type, event.matches)
        ):
            self.changed = True

    def _add(self, event: Activity, ts: int) -> None:
        state = self.state
        if state is None:
            self._create(row_pending(event, self.fold_cfg))
        elif state.pending and ts >= state.last_ms:
            self._defer(row_pending(event, self.fold_cfg))
            self._drain()
        else:
            if self.stale:
                self._schedule()
            if _due_by(state, ts):
                self._fire(ts)
                if self.state is None:  # forgotten: the event starts a new life
                    self._create(row_pending(event, self.fold_cfg))
                    return
                if _due_by(state, ts):
                    self._defer(row_pending(event, self.fold_cfg))  # the clock is not there yet
                    return
            self._fold(event, ts)
            if state.pending:  # landed before the deferred ones: the deadline may have moved
                self._drain()

    def finish(self) -> UserState | None:
        """Fold what is no longer deferred, reschedule, fire what the clock has passed; None if
        the user's state is forgotten."""
        if self.state is not None and self.state.pending:
            self._drain()
        self._schedule()
        state = self.state
        if state is not None and _due_by(state, self.settle):
            self._fire(self.settle)
        if self.state is not None and self.state.funnels:
            self._stall(self.state)
        return self.state

    def _stall(self, state: UserState) -> None:
        """Fire a ``stalled`` transition for each funnel window the clock has passed."""
        stalls = due_stalls(state.funnels, self.fold_cfg.funnels, self.settle)
        for stall in stalls:
            self.changed = True
            mark_signal(state, KIND_INDEX["stalled"], self.arm("stalled"), stall.at_ms)
            transition = Transition(
                "stalled",
                state.stage,
                state.stage,
                stall.at_ms,
                stall.at_ms,
                min(state.last_ms, stall.at_ms),
                stall.reasons(),
            )
            self.fired.append((transition, state.copy()))

    # -- steps -------------------------------------------------------------------------------
    def _schedule(self) -> None:
        if self.stale and self.state is not None:
            schedule_deadline(self.state, self.life_cfg)
            self.stale = False

    def _fire(self, until: int) -> None:
        """Fire the deadlines up to ``until`` the clock has passed; a discard forgets the user
        (their deferred events start a new life)."""
        state = self.state
        assert state is not None
        transitions = advance(state, min(until, self.settle), self.life_cfg)
        if not transitions:
            return
        self.changed = True
        for transition in transitions:
            if transition.kind != "discard":
                kind = transition.kind
                mark_signal(state, KIND_INDEX[kind], self.arm(kind), transition.at_ms)
        snapshot = state.copy()
        self.fired.extend((t, snapshot) for t in transitions if t.kind != "discard")
        if transitions[-1].kind == "discard":
            self.state = None
            for event in state.pending:
                if self._current() is None:
                    self._create(event)
                else:
                    self._defer(event)
            if self._current() is not None:
                self._drain()

    def _current(self) -> UserState | None:
        """``self.state`` as it is now, read after a call that may have replaced it. Not the
        attribute itself: mypy keeps an attribute's narrowed type across calls (here ``None``
        after ``self.state = None``, whatever ``_create`` did since), and mypyc compiles that
        narrowing into a type check that fails at run time."""
        return self.state

    def _defer(self, event: Pending) -> None:
        state = self.state
        assert state is not None
        key = event[:2]
        if key in state.recent or any(p[:2] == key for p in state.pending):
            self.duplicates += 1
            return
        if len(state.pending) >= MAX_PENDING:  # take the clock to the first deferred event
            self.settle = max(self.settle, state.pending[0][0])
        insort(state.pending, event)
        self.changed = True

    def _drain(self) -> None:
        """Fold the deferred events whose preceding deadlines the clock has passed (or that no
        longer jump past a deadline)."""
        while self.state is not None and self.state.pending:
            self._schedule()
            state = self.state
            first = state.pending[0]
            if _due_by(state, first[0]):
                self._fire(first[0])
                if self._current() is not state:
                    return  # forgotten: _fire re-read the deferred events into a new life
                if _due_by(state, first[0]):
                    return  # still ahead of the clock
            del state.pending[0]
            self._fold_pending(first)

    def _create(self, event: Pending) -> None:
        day = self.fold_cfg.calendar.day_of(event[0])
        self.state = new_state_of(event, day, self.fold_cfg)
        on_activity(None, self.state, self.life_cfg)
        self.changed = self.stale = True

    def _fold(self, event: Activity, ts: int) -> None:
        state = self.state
        assert state is not None
        before = Before.of(state)
        day = self.fold_cfg.calendar.day_of(ts)
        if not fold_row(state, event, day, self.fold_cfg):
            self.duplicates += 1
            return
        self._activity(before, state, ts)

    def _fold_pending(self, event: Pending) -> None:
        state = self.state
        assert state is not None
        before = Before.of(state)
        day = self.fold_cfg.calendar.day_of(event[0])
        if not fold_pending(state, event, day, self.fold_cfg):
            self.duplicates += 1
            return
        self._activity(before, state, event[0])

    def _activity(self, before: Before, state: UserState, ms: int) -> None:
        self.changed = self.stale = True
        if state.marks:
            self.returns.extend(observe_activity(state, ms))
        returned = on_activity(before, state, self.life_cfg)
        if returned is not None:
            kind = returned.kind
            mark_signal(state, KIND_INDEX[kind], self.arm(kind), returned.at_ms)
            self.fired.append((returned, state.copy()))


def _treatment(_kind: str) -> int:
    return 0
