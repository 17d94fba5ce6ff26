"""Summaries, likelihood, simulation and maximum-likelihood fit of MBG/NBD (agents.logic.fit)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special

from agents.logic.churn import ModelParams
from agents.logic.fit import Summary, fit, log_likelihood, simulate_mbgnbd, summaries_from_events

TRUE = ModelParams(r=0.8, alpha=4.0, a=0.3, b=3.0)
DAY_MS = 86_400_000


def day_of(ts_ms: int) -> int:
    return ts_ms // DAY_MS


def at(day: int, hour: int = 12) -> int:
    return day * DAY_MS + hour * 3_600_000


# --- summaries_from_events ------------------------------------------------------------------


def test_summaries_from_events_hand_made() -> None:
    events = [
        ("bob", at(10, 1)),
        ("ann", at(3)),
        ("bob", at(10, 23)),  # same day as the first: one active day
        ("ann", at(7)),
        ("bob", at(12)),
        ("ann", at(4)),
        ("cid", at(20)),
        ("ann", at(21)),  # after now: ignored
        ("dan", at(25)),  # only after now: no summary
        ("bob", at(20, 18)),  # today, before now
    ]
    now_ms = at(20, 19)
    assert summaries_from_events(events, now_ms, day_of) == [
        Summary(x=2, t_x=4.0, T=17.0),  # ann: days 3, 4, 7
        Summary(x=2, t_x=10.0, T=10.0),  # bob: days 10, 12, 20
        Summary(x=0, t_x=0.0, T=0.0),  # cid: day 20
    ]


# --- log_likelihood -------------------------------------------------------------------------


def naive_log_likelihood(p: ModelParams, s: Summary) -> float:
    """The MBG/NBD individual likelihood written term by term with math.lgamma."""
    r, alpha, a, b = p.r, p.alpha, p.a, p.b
    x, t_x, T = s.x, s.t_x, s.T

    def log_beta(u: float, v: float) -> float:
        return math.lgamma(u) + math.lgamma(v) - math.lgamma(u + v)

    log_gamma_part = math.lgamma(r + x) - math.lgamma(r) + r * math.log(alpha)
    alive = log_beta(a, b + x + 1) - log_beta(a, b) - (r + x) * math.log(alpha + T)
    dropped = log_beta(a + 1, b + x) - log_beta(a, b) - (r + x) * math.log(alpha + t_x)
    return log_gamma_part + math.log(math.exp(alive) + math.exp(dropped))


def test_log_likelihood_matches_the_naive_sum() -> None:
    summaries = [
        Summary(0, 0.0, 0.0),
        Summary(0, 0.0, 30.0),
        Summary(3, 10.0, 12.0),
        Summary(3, 10.0, 12.0),  # duplicates are counted, not dropped
        Summary(12, 40.0, 90.0),
    ]
    for p in (TRUE, ModelParams(2.5, 0.7, 1.8, 0.4)):
        expected = sum(naive_log_likelihood(p, s) for s in summaries)
        assert log_likelihood(p, summaries) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("T", [0.0, 1.0, 30.0, 365.0])
def test_likelihood_of_no_repeat_is_a_probability(T: float) -> None:
    """x = 0 by age T: dropout at time 0, or alive and silent: a/(a+b) + b/(a+b) (a/(a+T))^r."""
    expected = (
        TRUE.a / (TRUE.a + TRUE.b)
        + TRUE.b / (TRUE.a + TRUE.b) * (TRUE.alpha / (TRUE.alpha + T)) ** TRUE.r
    )
    assert math.exp(log_likelihood(TRUE, [Summary(0, 0.0, T)])) == pytest.approx(expected)


def test_log_likelihood_rejects_impossible_summaries() -> None:
    with pytest.raises(ValueError):
        log_likelihood(TRUE, [Summary(1, 5.0, 4.0)])


# --- simulate_mbgnbd ------------------------------------------------------------------------


def test_simulation_matches_the_population_moments() -> None:
    """Share with x = 0 and mean x at a fixed T against the model's closed forms.

    E[X(T)] = b / (a - 1) * (1 - 2F1(r, b + 1; a + b; T / (alpha + T)) (alpha / (alpha + T))^r)
    (Batislam et al. 2007). Tolerance: 4 standard errors of the simulated mean.
    """
    T, n = 60.0, 50_000
    x = np.array([s.x for s in simulate_mbgnbd(TRUE, n, T, seed=3)], dtype=float)
    r, alpha, a, b = TRUE.r, TRUE.alpha, TRUE.a, TRUE.b
    p_zero = a / (a + b) + b / (a + b) * (alpha / (alpha + T)) ** r
    assert abs((x == 0).mean() - p_zero) < 4 * math.sqrt(p_zero * (1 - p_zero) / n)
    hyp = special.hyp2f1(r, b + 1, a + b, T / (alpha + T))
    mean_x = b / (a - 1) * (1 - hyp * (alpha / (alpha + T)) ** r)
    assert abs(x.mean() - mean_x) < 4 * x.std() / math.sqrt(n)


def test_simulation_is_deterministic_and_consistent() -> None:
    ages = [10.0, 50.0, 90.0] * 100
    first = simulate_mbgnbd(TRUE, 300, ages, seed=1)
    assert first == simulate_mbgnbd(TRUE, 300, ages, seed=1)
    assert [s.T for s in first] == ages
    assert all(s.x >= 0 and 0 <= s.t_x <= s.T for s in first)
    assert all(s.t_x == 0 for s in first if s.x == 0)


# --- fit ------------------------------------------------------------------------------------


def test_fit_recovers_known_parameters() -> None:
    """20,000 users with T ~ U(60, 120) days, simulated from r=0.8, alpha=4, a=0.3, b=3.

    Over 30 seeds the relative error of the MLE had standard deviation 1.5 % (r), 1.7 % (alpha),
    3.1 % (a), 5.5 % (b): the dropout Beta is the weakly identified part, b most of all. The
    tolerances are about 4.5 standard deviations each: 7 % on r and alpha, 15 % on a, 25 % on b;
    the mean rate r/alpha (sd 1.1 %) within 5 % and the mean dropout a/(a+b) (sd 2.2 %) within
    10 %. The seed is fixed, so the test is deterministic.
    """
    ages = np.random.default_rng(2024).uniform(60, 120, 20_000).tolist()
    summaries = simulate_mbgnbd(TRUE, 20_000, ages, seed=2024)
    result = fit(summaries)
    p = result.params
    assert result.converged, result.message
    assert result.n_users == 20_000
    assert p.r == pytest.approx(TRUE.r, rel=0.07)
    assert p.alpha == pytest.approx(TRUE.alpha, rel=0.07)
    assert p.a == pytest.approx(TRUE.a, rel=0.15)
    assert p.b == pytest.approx(TRUE.b, rel=0.25)
    assert p.r / p.alpha == pytest.approx(TRUE.r / TRUE.alpha, rel=0.05)
    assert p.a / (p.a + p.b) == pytest.approx(TRUE.a / (TRUE.a + TRUE.b), rel=0.10)
    assert result.log_likelihood == pytest.approx(log_likelihood(p, summaries), rel=1e-12)
    assert result.log_likelihood >= log_likelihood(TRUE, summaries)


def test_fit_on_whole_day_summaries() -> None:
    """Active-day data has integer t_x and T and many repeated rows; the fit still converges."""
    ages = np.random.default_rng(5).integers(30, 90, 5_000).astype(float).tolist()
    summaries = [
        Summary(s.x, float(math.floor(s.t_x)), s.T)
        for s in simulate_mbgnbd(TRUE, 5_000, ages, seed=5)
    ]
    result = fit(summaries, initial=ModelParams(1.0, 1.0, 1.0, 1.0))
    assert result.converged, result.message
    assert result.log_likelihood >= log_likelihood(TRUE, summaries)


def test_penalizer_shrinks_the_parameters() -> None:
    summaries = simulate_mbgnbd(TRUE, 3_000, 60.0, seed=11)
    plain, shrunk = fit(summaries).params, fit(summaries, penalizer=0.1).params
    squares = [sum(v * v for v in (q.r, q.alpha, q.a, q.b)) for q in (plain, shrunk)]
    assert squares[1] < squares[0]


def test_fit_needs_data() -> None:
    with pytest.raises(ValueError):
        fit([])
