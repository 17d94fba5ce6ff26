"""Calibration by P(alive) band: predicted and realised active days agree on an MBG/NBD
population, and the bands are read right from a user's active-day bitmap.

The population is drawn here with the standard library only (the oracle: the process itself,
not the model's formulas): per user lambda ~ Gamma(r, alpha), p ~ Beta(a, b), dropout at the
start and after each repeat, Poisson repeats; observed up to a reference age T ~ U(30, 90) days
and then for 7 more days.
"""

from __future__ import annotations

import math
import random
import statistics

import pytest

from agents.logic.calibration import Band, band_index, calibrate, outcomes_of, summary_before
from agents.logic.churn import ModelParams
from agents.logic.days import Calendar
from tests.unit.conftest import T0, engine_config, make_event

TRUE = ModelParams(r=0.8, alpha=4.0, a=0.3, b=3.0)
USERS, HORIZON = 20_000, 7.0


def draw(seed: int) -> list[tuple[tuple[int, float, float], int]]:
    """Per user: (x, t_x, T) at the reference age T, and repeats in (T, T + 7]."""
    rnd = random.Random(seed)
    users = []
    for _ in range(USERS):
        T = rnd.uniform(30, 90)
        lam = rnd.gammavariate(TRUE.r, 1.0 / TRUE.alpha)
        p = rnd.betavariate(TRUE.a, TRUE.b)
        x, t_x, after, t = 0, 0.0, 0, 0.0
        while rnd.random() >= p:
            t += rnd.expovariate(lam) if lam > 0 else math.inf
            if t > T + HORIZON:
                break
            if t <= T:
                x, t_x = x + 1, t
            else:
                after += 1
        users.append(((x, t_x, T), after))
    return users


def agreement(users, params: ModelParams) -> list[tuple[Band, float]]:
    """Each band with the sampling error of its actual total (sd of the band's outcomes)."""
    outcomes = {key: (1, after) for key, after in users}  # T is continuous: keys are unique
    assert len(outcomes) == len(users)
    bands = calibrate(outcomes, params, HORIZON)
    errors = []
    for band in bands:
        after = [a for key, a in users if band_index(_alive(key, params)) == bands.index(band)]
        sd = statistics.pstdev(after) if len(after) > 1 else 0.0
        errors.append((band, sd * math.sqrt(len(after))))
    return errors


def _alive(key: tuple[int, float, float], params: ModelParams) -> float:
    from agents.logic.churn import p_alive

    return p_alive(*key, params)


def test_predicted_and_actual_active_days_agree_in_every_band() -> None:
    """Within 4 sampling errors in every band with at least 200 users; and the test has
    power: parameters with the dropout far off (a=3, b=3) miss in some band."""
    users = draw(seed=17)
    checked = 0
    for band, error in agreement(users, TRUE):
        if band.users < 200:
            continue
        checked += 1
        assert abs(band.actual - band.predicted) <= 4 * error, (band, error)
    assert checked >= 3
    wrong = ModelParams(r=0.8, alpha=4.0, a=3.0, b=3.0)
    assert any(
        abs(b.actual - b.predicted) > 4 * e for b, e in agreement(users, wrong) if b.users >= 200
    )


def test_a_bitmap_is_split_at_the_reference_day() -> None:
    calendar = Calendar("UTC")
    day0 = calendar.day_of(T0)
    cfg = engine_config()
    from agents.logic.fold import fold, new_state

    state = new_state(make_event("u", T0), day0, cfg.fold)
    for d in (3, 5, 9, 12, 20):
        ms = T0 + d * 86_400_000
        fold(state, make_event("u", ms), calendar.day_of(ms), cfg.fold)
    # active on days 0, 3, 5, 9, 12, 20; reference day 5, next 7 days: 9 and 12
    assert summary_before(state, day0, day0 + 5, 7) == ((2, 5, 5), 2)
    assert summary_before(state, day0, day0 + 12, 7) == ((4, 12, 12), 0)
    assert summary_before(state, day0 + 1, day0, 7) is None
    assert outcomes_of([state, state], calendar, day0 + 5, 7) == {(2, 5.0, 5.0): (2, 4)}


@pytest.mark.parametrize(("alive", "index"), [(0.0, 0), (0.19, 0), (0.2, 1), (0.95, 4), (1.0, 4)])
def test_band_edges(alive: float, index: int) -> None:
    assert band_index(alive) == index
