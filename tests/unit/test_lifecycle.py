"""Stage transitions, table-driven, and the engine's signal sequence on a scripted population."""

from __future__ import annotations

import pytest

from agents.logic.days import DAY_MS
from agents.logic.engine import Engine
from agents.logic.fold import new_state
from agents.logic.lifecycle import Before, advance, on_activity, risk_deadline_ms, schedule
from agents.logic.state import Deadline, Stage
from tests.unit.conftest import T0, engine_config, make_event

HOUR = 3_600_000
CFG = engine_config()
LC = CFG.lifecycle


def state_at(stage: Stage, last_ms: int = T0, days: int = 0b1):
    state = new_state(make_event("u", T0), CFG.calendar.day_of(T0), CFG.fold)
    state.stage, state.last_ms, state.days = stage, last_ms, days
    state.last_day = CFG.calendar.day_of(last_ms)
    schedule(state, LC)
    return state


@pytest.mark.parametrize(
    ("stage", "new_day", "expected", "signal"),
    [
        (Stage.NEW, True, Stage.ACTIVE, None),
        (Stage.NEW, False, Stage.NEW, None),
        (Stage.ACTIVE, True, Stage.ACTIVE, None),
        (Stage.AT_RISK, True, Stage.ACTIVE, None),
        (Stage.AT_RISK, False, Stage.AT_RISK, None),
        (Stage.DORMANT, True, Stage.REACTIVATED, "reactivated"),
        (Stage.DORMANT, False, Stage.REACTIVATED, "reactivated"),
        (Stage.CHURNED, True, Stage.REACTIVATED, "reactivated"),
        (Stage.REACTIVATED, True, Stage.ACTIVE, None),
    ],
)
def test_activity_transitions(stage, new_day, expected, signal) -> None:
    old = state_at(stage)
    state = old.copy()
    later = T0 + (DAY_MS if new_day else HOUR)
    from agents.logic.fold import fold

    fold(state, make_event("u", later), CFG.calendar.day_of(later), CFG.fold)
    transition = on_activity(Before.of(old), state, LC)
    assert state.stage is expected
    assert (transition.kind if transition else None) == signal


@pytest.mark.parametrize(
    ("stage", "deadline", "after", "kind"),
    [
        (Stage.ACTIVE, Deadline.DORMANT, Stage.DORMANT, "dormant"),
        (Stage.AT_RISK, Deadline.DORMANT, Stage.DORMANT, "dormant"),
        (Stage.DORMANT, Deadline.CHURNED, Stage.CHURNED, "churned"),
    ],
)
def test_deadline_transitions(stage, deadline, after, kind) -> None:
    state = state_at(stage)
    if stage is Stage.ACTIVE:  # force the dormant deadline first
        state.deadline, state.deadline_ms = Deadline.DORMANT, T0 + 7 * DAY_MS
    assert state.deadline is deadline
    transitions = advance(state, state.deadline_ms, LC)
    assert transitions[0].kind == kind
    assert state.stage is after


def test_a_long_silence_fires_every_stage_in_order() -> None:
    state = state_at(Stage.ACTIVE, days=0b1011)
    kinds = [t.kind for t in advance(state, T0 + 500 * DAY_MS, LC)]
    assert kinds[-3:] == ["dormant", "churned", "discard"] or kinds[-2:] == ["churned", "discard"]
    assert kinds.index("dormant") < kinds.index("churned")


def test_risk_deadline_is_when_p_alive_crosses_the_threshold() -> None:
    from agents.logic.churn import p_alive
    from agents.logic.lifecycle import model_inputs

    state = state_at(Stage.ACTIVE, last_ms=T0 + 3 * DAY_MS, days=0b1111)
    at = risk_deadline_ms(state, LC)
    x, t_x, origin = model_inputs(state, CFG.calendar)
    assert p_alive(x, t_x, (at - origin) / DAY_MS, LC.params) == pytest.approx(
        LC.alive_threshold, rel=1e-6
    )


def test_users_with_the_same_counts_share_one_cached_t_star_and_a_refit_starts_afresh() -> None:
    """risk_deadline_ms keeps T* per (x, t_x) in the config: users a week apart with the same
    counts get deadlines a week apart, each the crossing computed anew from the formula; a
    refit (``dataclasses.replace`` with new params, as agents.logic.model does) does not reuse
    the old T*."""
    import dataclasses
    import math

    from agents.logic.churn import ModelParams, risk_deadline_T
    from agents.logic.lifecycle import LifecycleConfig, model_inputs
    from agents.logic.state import UserState

    config = dataclasses.replace(LC)  # a cache of its own
    first = state_at(Stage.ACTIVE, last_ms=T0 + 3 * DAY_MS, days=0b1111)
    later = state_at(Stage.ACTIVE, last_ms=T0 + 3 * DAY_MS, days=0b1111)
    later.first_ms += 7 * DAY_MS
    later.last_ms += 7 * DAY_MS
    later.last_day += 7

    def uncached(state: UserState, lc: LifecycleConfig) -> int:
        x, t_x, origin = model_inputs(state, CFG.calendar)
        t_star = risk_deadline_T(x, float(t_x), lc.params, lc.alive_threshold)
        return max(origin + math.ceil(t_star * DAY_MS), state.last_ms)

    assert config.risk_offsets == {}
    at_first, at_later = risk_deadline_ms(first, config), risk_deadline_ms(later, config)
    assert len(config.risk_offsets) == 1  # one (x, t_x) pair
    assert (at_first, at_later) == (uncached(first, config), uncached(later, config))
    assert at_later - at_first == 7 * DAY_MS
    refit = dataclasses.replace(config, params=ModelParams(r=0.5, alpha=2.0, a=0.5, b=3.0))
    assert refit.risk_offsets == {}
    assert risk_deadline_ms(first, refit) == uncached(first, refit) != at_first


def test_a_risk_crossed_before_the_last_activity_fires_at_that_activity() -> None:
    """p* = 0.95 is above P(alive) right after a first activity, b / (a + b) = 0.91: T* lies
    before the user's first event. The churn_risk is dated at that event, not days before it."""
    eng = Engine(engine_config(threshold=0.95))
    eng.assign(0, {})
    first = T0 + 10 * HOUR
    out = eng.process(0, [make_event("u", first)], 0)
    out.signals += eng.process(0, [], 0, first).signals  # the watermark reaches the event
    assert [(s["kind"], s["event_time_ms"]) for _, _, s in out.signals] == [("churn_risk", first)]


def test_scripted_population_gives_exactly_the_expected_signals() -> None:
    """Event clock: stay, fade, go dormant, churn, come back; exactly these signals, once."""
    eng = Engine(engine_config(threshold=0.05))
    eng.assign(0, {})
    signals: list[tuple[str, str, str]] = []

    def run(events, wm_ms):
        out = eng.process(0, events, 0, wm_ms)
        signals.extend((s["user_id"], s["kind"], s["signal_id"]) for _, _, s in out.signals)

    daily = [make_event("stayer", T0 + d * DAY_MS + HOUR) for d in range(0, 60)]
    run([make_event("fader", T0 + HOUR), make_event("fader", T0 + DAY_MS + HOUR)], 0)
    run([make_event("returner", T0 + 2 * HOUR)], 0)
    for d in range(0, 60):
        run([daily[d]], T0 + d * DAY_MS)
        if d == 45:
            run([make_event("returner", T0 + 45 * DAY_MS + HOUR)], T0 + d * DAY_MS)
    kinds: dict[str, list[str]] = {}
    for user, kind, _ in signals:
        kinds.setdefault(user, []).append(kind)
    assert "stayer" not in kinds
    lapses = {user: [k for k in ks if k != "churn_risk"] for user, ks in kinds.items()}
    assert lapses["fader"] == ["dormant", "churned"]
    # back on day 45, then silent again until day 59: dormant once more, not yet churned
    assert lapses["returner"] == ["dormant", "churned", "reactivated", "dormant"]
    assert kinds["returner"].count("churn_risk") <= 2
    assert len({sid for _, _, sid in signals}) == len(signals)
    # replaying the same input into a fresh engine yields the same ids
    first = [sid for _, _, sid in signals]
    signals.clear()
    eng = Engine(engine_config(threshold=0.05))
    eng.assign(0, {})
    run([make_event("fader", T0 + HOUR), make_event("fader", T0 + DAY_MS + HOUR)], 0)
    run([make_event("returner", T0 + 2 * HOUR)], 0)
    for d in range(0, 60):
        run([daily[d]], T0 + d * DAY_MS)
        if d == 45:
            run([make_event("returner", T0 + 45 * DAY_MS + HOUR)], T0 + d * DAY_MS)
    assert [sid for _, _, sid in signals] == first


def test_a_partition_behind_does_not_fire_on_another_partitions_clock() -> None:
    """Event clock: partition 1 reached day 40, partition 0 is still at day 2 with a daily user
    whose later events are not read yet: no deadline may fire on partition 0."""
    eng = Engine(engine_config())
    eng.assign(0, {})
    eng.assign(1, {})
    eng.process(0, [make_event("daily", T0 + d * DAY_MS + HOUR) for d in range(3)], 0)
    out = eng.process(1, [make_event("far", T0 + 40 * DAY_MS)], 0, T0 + 40 * DAY_MS)
    out.signals += eng.tick(0).signals
    assert not [s for _, _, s in out.signals if s["user_id"] == "daily"]
    assert eng.now_ms(0) >= T0 + 39 * DAY_MS  # the worker's gauges still show the newest day


def test_a_replay_in_one_batch_gives_the_same_signals_as_live_arrival() -> None:
    """Day 0 and day 45 folded together still yield dormant, churned, then reactivated."""
    events = [make_event("r", T0 + HOUR), make_event("r", T0 + 45 * DAY_MS + HOUR)]
    live = Engine(engine_config(threshold=0.01))
    live.assign(0, {})
    live_kinds = []
    for event in events:
        out = live.process(0, [event], 0, event.timestamp_ms - HOUR)
        live_kinds += [s["signal_id"] for _, _, s in out.signals]
    batch = Engine(engine_config(threshold=0.01))
    batch.assign(0, {})
    out = batch.process(0, list(events), 0, 0)
    assert [s["kind"] for _, _, s in out.signals] == ["dormant", "churned", "reactivated"]
    assert [s["signal_id"] for _, _, s in out.signals] == live_kinds
