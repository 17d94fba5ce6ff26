"""The live model's pure parts: rows from state, their record, the refit guards, re-arming."""

from __future__ import annotations

import math

import numpy as np
import pytest

from agents.logic.churn import ModelParams, new_user_p_alive, risk_deadline_T
from agents.logic.days import DAY_MS
from agents.logic.engine import Engine
from agents.logic.fit import FitResult, Summary, fit, fit_rows, simulate_mbgnbd
from agents.logic.model import (
    apply_params,
    decode_rows,
    encode_rows,
    engine_outcomes,
    engine_rows,
    judge,
    merge_rows,
)
from agents.logic.risk_returns import RiskReturns
from agents.logic.state import Deadline, Stage
from schemas.records import SIGNAL_KINDS
from tests.unit.conftest import PARAMS, T0, engine_config, make_event

HOUR = 3_600_000
TRUE = ModelParams(r=0.8, alpha=4.0, a=0.3, b=3.0)


def whole_day_rows(summaries: list[Summary]) -> dict[tuple[int, int, int], int]:
    """Continuous MBG/NBD summaries in whole days: t_x rounded up (the day of the last
    transaction, counted from the first), T whole. (A worker's rows also have x <= t_x, as
    its active days are distinct; a continuous population need not.)"""
    rows: dict[tuple[int, int, int], int] = {}
    for s in summaries:
        T = int(s.T)
        row = (s.x, min(math.ceil(s.t_x), T), T)
        rows[row] = rows.get(row, 0) + 1
    return rows


def test_engine_rows_count_each_partitions_users_at_its_own_day() -> None:
    eng = Engine(engine_config())
    eng.assign(0, {})
    eng.assign(1, {})
    eng.assign(2, {})  # no event yet: its clock has not started, no rows yet
    ann = [make_event("ann", T0 + d * DAY_MS + HOUR) for d in (0, 2, 5)]
    eng.process(0, [*ann, make_event("bob", T0 + 3 * DAY_MS + HOUR)], 0, T0 + 10 * DAY_MS)
    eng.process(1, [make_event("cid", T0 + 4 * DAY_MS + HOUR)], 0, T0 + 6 * DAY_MS)
    rows = engine_rows(eng, 0)
    assert rows == {
        0: (T0 + 10 * DAY_MS, {(2, 5, 10): 1, (0, 0, 7): 1}),
        1: (T0 + 6 * DAY_MS, {(0, 0, 2): 1}),
        2: (0, {}),
    }
    assert merge_rows(r for _, r in rows.values()) == {(2, 5, 10): 1, (0, 0, 7): 1, (0, 0, 2): 1}
    assert merge_rows([{(0, 0, 2): 2}, {(0, 0, 2): 3, (1, 1, 2): 1}]) == {
        (0, 0, 2): 5,
        (1, 1, 2): 1,
    }


def test_rows_record_round_trips_and_rejects_impossible_rows() -> None:
    rows = {(2, 5, 10): 3, (0, 0, 7): 1}
    assert decode_rows(encode_rows(4, T0, rows)) == (4, T0, rows)
    for bad in (
        b'{"v":2,"partition":0,"at_ms":0,"rows":[]}',
        b'{"v":1,"partition":0,"at_ms":0,"rows":[[1,5,4,1]]}',  # t_x > T
        b'{"v":1,"partition":0,"at_ms":0,"rows":[[1,1,4,0]]}',  # no users
        b"[]",
    ):
        with pytest.raises(ValueError):
            decode_rows(bad)


def test_judge_keeps_the_last_good_fit_unless_the_new_one_is_sound() -> None:
    good = FitResult(TRUE, -1000.0, 5000, True, "ok")
    assert judge(good, min_users=1000) is None
    assert "fewer than" in str(judge(good, min_users=10_000))
    assert "converge" in str(judge(FitResult(TRUE, -1.0, 5000, False, "ABNORMAL"), 1000))
    assert "finite" in str(judge(FitResult(TRUE, -math.inf, 5000, True, "ok"), 1000))
    wild = ModelParams(r=0.8, alpha=4.0, a=0.3, b=3e6)  # the optimiser ran to its bound
    assert "b=" in str(judge(FitResult(wild, -1.0, 5000, True, "ok"), 1000))


def test_fit_rows_recovers_known_parameters_from_whole_day_rows() -> None:
    """The worker fits whole-day rows: 20,000 users simulated from r=0.8, alpha=4, a=0.3, b=3
    with T ~ U{60..120} days, within the tolerances of test_fit's recovery test (7 % on r and
    alpha, 15 % on a, 25 % on b); and the same as fit() on the same summaries."""
    ages = np.random.default_rng(2024).integers(60, 121, 20_000).astype(float).tolist()
    rows = whole_day_rows(simulate_mbgnbd(TRUE, 20_000, ages, seed=2024))
    result = fit_rows(rows)
    p = result.params
    assert result.converged, result.message
    assert result.n_users == 20_000
    assert judge(result, min_users=1000) is None
    assert p.r == pytest.approx(TRUE.r, rel=0.07)
    assert p.alpha == pytest.approx(TRUE.alpha, rel=0.07)
    assert p.a == pytest.approx(TRUE.a, rel=0.15)
    assert p.b == pytest.approx(TRUE.b, rel=0.25)
    expanded = [Summary(x, float(t), float(T)) for (x, t, T), n in rows.items() for _ in range(n)]
    assert fit(expanded).log_likelihood == pytest.approx(result.log_likelihood, rel=1e-6)


def _one_visit_engine(threshold: float) -> Engine:
    eng = Engine(engine_config(threshold=threshold))
    eng.assign(0, {})
    eng.process(0, [make_event("u", T0 + HOUR), make_event("v", T0 + 2 * HOUR)], 0, T0)
    return eng


def test_new_parameters_re_arm_live_users_deadlines() -> None:
    """threshold 0.5: under PARAMS a one-time user is at risk only after 7 days (dormant
    first); under parameters with faster decay the risk deadline comes first, and fires."""
    eng = _one_visit_engine(threshold=0.5)
    state = eng.user("u")
    assert state is not None and state.deadline is Deadline.DORMANT
    fast = ModelParams(r=2.0, alpha=2.0, a=0.5, b=3.0)
    moved, problem = apply_params(eng, fast)
    assert (moved, problem) == (2, None)
    assert eng.config.lifecycle.params == fast
    state = eng.user("u")
    assert state is not None and state.deadline is Deadline.AT_RISK
    t_star = risk_deadline_T(0, 0.0, fast, 0.5)
    assert state.deadline_ms == T0 + math.ceil(t_star * DAY_MS)
    assert state.deadline_ms < T0 + HOUR + 7 * DAY_MS
    out = eng.process(0, [], 0, T0 + 6 * DAY_MS)
    assert sorted(s["user_id"] for k, _, s in out.signals if k == "churn_risk") == ["u", "v"]
    assert apply_params(eng, fast) == (0, None)  # the same parameters again: nothing moves


def test_a_refit_that_puts_the_threshold_too_high_switches_churn_risk_off() -> None:
    eng = _one_visit_engine(threshold=0.5)
    apply_params(eng, ModelParams(r=2.0, alpha=2.0, a=0.5, b=3.0))
    high = ModelParams(r=2.0, alpha=2.0, a=3.0, b=1.0)  # b/(a+b) = 0.25 <= 0.5
    assert new_user_p_alive(high) < 0.5
    moved, problem = apply_params(eng, high)
    assert moved == 2 and problem is not None and "b/(a+b)" in problem
    assert not eng.config.lifecycle.risk_on
    state = eng.user("u")
    assert state is not None and state.deadline is Deadline.DORMANT
    out = eng.process(0, [], 0, T0 + 8 * DAY_MS)
    assert sorted(k for k, _, _ in out.signals) == ["dormant", "dormant"]
    restored, problem = apply_params(eng, PARAMS)
    assert problem is None and eng.config.lifecycle.risk_on
    assert restored == 0  # dormant users have no risk deadline to re-arm
    state = eng.user("u")
    assert state is not None and state.stage is Stage.DORMANT


def test_engine_outcomes_split_each_user_at_the_reference_day() -> None:
    """Today is day 20: the reference day is 12, the 7 days after it 13..19."""
    eng = Engine(engine_config())
    eng.assign(0, {})
    ann = [make_event("ann", T0 + d * DAY_MS + HOUR) for d in (0, 5, 12, 14, 19)]
    late = [make_event("bob", T0 + 15 * DAY_MS + HOUR)]  # first active after the reference
    eng.process(0, [*ann, *late, make_event("clock", T0 + 20 * DAY_MS + 2 * HOUR)], 0)
    assert engine_outcomes(eng, 0) == {(2, 12.0, 12.0): (1, 2)}


def test_engine_outcomes_count_the_churn_risk_return_rates_in_the_same_pass() -> None:
    """Today is day 60: cy, active daily up to day 25, and dee, active up to day 40 and back on
    day 55, are both lapsed at the 7-day reference day 52 (cy also at the 30-day one, 29)."""
    eng = Engine(engine_config(threshold=0.5, dormant_days=20))
    eng.assign(0, {})
    cy = [make_event("cy", T0 + d * DAY_MS + HOUR) for d in range(26)]
    dee = [make_event("dee", T0 + d * DAY_MS + HOUR) for d in (38, 39, 40, 55)]
    eng.process(0, [*cy, *dee, make_event("clock", T0 + 60 * DAY_MS + 2 * HOUR)], 0)
    states = [s for s in (eng.user("cy"), eng.user("dee")) if s is not None]
    assert all(any(m[0] == SIGNAL_KINDS.index("churn_risk") for m in s.marks) for s in states)
    risk = RiskReturns()
    engine_outcomes(eng, 0, risk=risk)
    by_window = {w: sum(n for (_, win), n in risk.eligible.items() if win == w) for w in (7, 30)}
    assert by_window == {7: 2, 30: 1}
    assert sum(risk.returned.values()) == 1  # dee, within 7 days
    alone = RiskReturns()
    alone.add(states, eng.config.calendar, eng.config.calendar.day_of(T0) + 60)
    assert (+risk.eligible, +risk.returned) == (+alone.eligible, +alone.returned)
