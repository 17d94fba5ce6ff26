"""The MBG/NBD churn formulas (agents.logic.churn), checked against independent computations."""

from __future__ import annotations

import itertools
import math
import statistics

import numpy as np
import orjson
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy import integrate, optimize, special, stats

from agents.logic.churn import (
    ModelParams,
    expected_active_days,
    hyp2f1,
    new_user_p_alive,
    p_alive,
    risk_deadline_T,
    threshold_problem,
    usual_gap_of_bitmap,
)

PARAMS = ModelParams(r=0.8, alpha=4.0, a=0.3, b=3.0)

params_st = st.builds(
    ModelParams,
    r=st.floats(0.05, 5.0),
    alpha=st.floats(0.1, 50.0),
    a=st.floats(0.05, 5.0),
    b=st.floats(0.1, 20.0),
)


def naive_p_alive(x: int, t_x: float, T: float, p: ModelParams) -> float:
    growth = math.pow((p.alpha + T) / (p.alpha + t_x), p.r + x)
    return 1 / (1 + (p.a / (p.b + x)) * growth)


# --- ModelParams ---------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["r", "alpha", "a", "b"])
@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan, math.inf])
def test_params_must_be_finite_and_positive(field: str, bad: float) -> None:
    values = {"r": 1.0, "alpha": 1.0, "a": 1.0, "b": 1.0, field: bad}
    with pytest.raises(ValueError, match=field):
        ModelParams(**values)


def test_params_file_round_trip(tmp_path) -> None:
    meta: dict[str, float | int | str] = {
        "log_likelihood": -123.5,
        "n_users": 42,
        "fitted_at": "2024-05-01T00:00:00Z",
    }
    path = tmp_path / "params.json"
    PARAMS.save(path, meta)
    assert ModelParams.load(path) == PARAMS
    doc = orjson.loads(path.read_bytes())
    assert doc["model"] == "mbgnbd"
    assert doc["time_unit"] == "day"
    assert doc["params"] == {"r": 0.8, "alpha": 4.0, "a": 0.3, "b": 3.0}
    assert doc["fit"] == meta
    assert "fit" not in orjson.loads(PARAMS.to_json())


@pytest.mark.parametrize(
    "data",
    [
        b'{"model": "bgnbd", "time_unit": "day", "params": {"r":1,"alpha":1,"a":1,"b":1}}',
        b'{"model": "mbgnbd", "time_unit": "week", "params": {"r":1,"alpha":1,"a":1,"b":1}}',
        b'{"model": "mbgnbd", "time_unit": "day", "params": {"r":1,"alpha":1,"a":1}}',
        b'{"model": "mbgnbd", "time_unit": "day", "params": {"r":1,"alpha":1,"a":1,"b":0}}',
        b"[1, 2]",
    ],
)
def test_params_file_rejects_other_models_and_bad_values(data: bytes) -> None:
    with pytest.raises(ValueError):
        ModelParams.from_json(data)


# --- p_alive --------------------------------------------------------------------------------

P_ALIVE_CASES = list(
    itertools.product(
        [0, 1, 5, 40],
        [0.0, 3.0, 30.0],
        [0.0, 1.0, 14.0, 200.0],
        [PARAMS, ModelParams(2.5, 0.7, 1.8, 0.4), ModelParams(0.1, 30.0, 0.05, 12.0)],
    )
)


@pytest.mark.parametrize(("x", "t_x", "gap", "p"), P_ALIVE_CASES)
def test_p_alive_matches_the_formula(x: int, t_x: float, gap: float, p: ModelParams) -> None:
    T = t_x + gap
    assert p_alive(x, t_x, T, p) == pytest.approx(naive_p_alive(x, t_x, T, p), rel=1e-12)


@pytest.mark.parametrize(("x", "t_x"), [(0, 0.0), (1, 1.0), (7, 20.0), (300, 365.0)])
def test_p_alive_right_after_last_activity(x: int, t_x: float) -> None:
    """At T = t_x only the dropout after the last activity counts: (b + x) / (a + b + x)."""
    expected = (PARAMS.b + x) / (PARAMS.a + PARAMS.b + x)
    assert p_alive(x, t_x, t_x, PARAMS) == pytest.approx(expected, rel=1e-14)


@given(
    p=params_st,
    x=st.integers(0, 500),
    t_x=st.floats(0, 1000),
    gaps=st.lists(st.floats(1e-3, 1000), min_size=2, max_size=10),
)
def test_p_alive_decreases_with_age(p: ModelParams, x: int, t_x: float, gaps: list[float]) -> None:
    ages = list(itertools.accumulate(gaps, initial=t_x))
    values = [p_alive(x, t_x, T, p) for T in ages]
    assert all(0.0 <= v <= 1.0 for v in values)
    assert all(later <= earlier for earlier, later in itertools.pairwise(values))


def test_p_alive_large_inputs_do_not_overflow() -> None:
    # The naive formula overflows: (2e6 / 1e6) ** 1e6.
    assert p_alive(10**6, 1e6, 2e6, PARAMS) == 0.0
    assert p_alive(10**6, 1e6, 1e6, PARAMS) == pytest.approx((3.0 + 1e6) / (3.3 + 1e6))
    assert 0.0 < p_alive(10**4, 1e4, 1e4 + 5, PARAMS) < 1.0


@pytest.mark.parametrize(("x", "t_x", "T"), [(-1, 0.0, 1.0), (0, -1.0, 1.0), (2, 5.0, 4.0)])
def test_p_alive_rejects_impossible_summaries(x: int, t_x: float, T: float) -> None:
    with pytest.raises(ValueError):
        p_alive(x, t_x, T, PARAMS)


# --- risk_deadline_T ------------------------------------------------------------------------


def numeric_deadline(x: int, t_x: float, p: ModelParams, threshold: float) -> float:
    """Root of p_alive(T) - p* by bracketing and Brent's method, independent of the closed form."""
    hi = t_x + 1.0
    while p_alive(x, t_x, hi, p) > threshold:
        hi = t_x + 2.0 * (hi - t_x)
    return float(
        optimize.brentq(
            lambda T: p_alive(x, t_x, T, p) - threshold, t_x, hi, xtol=1e-300, rtol=1e-15
        )
    )


@settings(max_examples=300, deadline=None)
@given(
    p=params_st,
    x=st.integers(0, 200),
    t_x=st.floats(0, 365),
    threshold=st.floats(0.01, 0.99),
)
def test_deadline_closed_form_is_the_root(
    p: ModelParams, x: int, t_x: float, threshold: float
) -> None:
    assume(threshold < (p.b + x) / (p.a + p.b + x) * (1 - 1e-9))  # otherwise T* <= t_x
    closed = risk_deadline_T(x, t_x, p, threshold)
    assume(closed < 1e12)
    assert closed > t_x
    assert closed == pytest.approx(numeric_deadline(x, t_x, p, threshold), rel=1e-9)
    assert p_alive(x, t_x, closed, p) == pytest.approx(threshold, rel=1e-10)


@given(p=params_st, x=st.integers(0, 200), t_x=st.floats(0, 365), slack=st.floats(0, 0.99))
def test_deadline_already_passed(p: ModelParams, x: int, t_x: float, slack: float) -> None:
    """p* at or above P(alive | T = t_x) = (b + x) / (a + b + x): T* <= t_x, returned as is."""
    at_last = (p.b + x) / (p.a + p.b + x)
    threshold = at_last + slack * (1 - at_last)
    assume(threshold < 1.0)
    # at slack 0 the root is t_x up to rounding, scaled by alpha + t_x in the closed form
    assert risk_deadline_T(x, t_x, p, threshold) <= t_x + (p.alpha + t_x) * 1e-12


def test_deadline_beyond_float_range_is_infinite() -> None:
    p = ModelParams(r=0.001, alpha=1.0, a=0.01, b=10.0)
    assert risk_deadline_T(0, 0.0, p, 0.01) == math.inf


@pytest.mark.parametrize("threshold", [0.0, 1.0, -0.5, 1.5])
def test_deadline_threshold_must_be_a_probability(threshold: float) -> None:
    with pytest.raises(ValueError):
        risk_deadline_T(1, 1.0, PARAMS, threshold)


# --- hyp2f1 ---------------------------------------------------------------------------------

HYP_VALUES = [0.1, 0.5, 1.3, 2.7, 5.0, 11.0]


@pytest.mark.parametrize("z", [0.0, 0.1, 0.5, 0.76, 0.9, 0.99, 0.999, -0.1, -0.5, -1.0, -5.0])
def test_hyp2f1_matches_scipy_on_a_grid(z: float) -> None:
    """rtol 1e-7: scipy's own accuracy on this grid (see the Euler-integral test below)."""
    for a, b, c in itertools.product(HYP_VALUES, HYP_VALUES, [0.3, 1.7, 4.2, 9.9, 31.0]):
        if z < 0 and c < min(a, b):
            continue  # outside the documented accurate domain for z < 0
        reference = special.hyp2f1(a, b, c, z)
        if math.isfinite(reference):  # scipy gives +-inf at c - b = -1, z = -5 (see below)
            assert hyp2f1(a, b, c, z) == pytest.approx(reference, rel=1e-7)


def euler_integral(a: float, b: float, c: float, z: float) -> float:
    """2F1 = int_0^1 t^(b-1) (1-t)^(c-b-1) (1-zt)^-a dt / B(b, c-b), for c > b > 0."""

    def integrand(t: float) -> float:
        log_f = (b - 1) * math.log(t) + (c - b - 1) * math.log1p(-t) - a * math.log1p(-z * t)
        return math.exp(log_f - special.betaln(b, c - b))

    return float(integrate.quad(integrand, 0, 1, epsabs=0, epsrel=1e-12, limit=2000)[0])


@pytest.mark.parametrize(
    ("a", "b", "c", "z"),
    [
        (5.0, 2.7, 31.0, -5.0),  # scipy 1.17 is off by 3e-8 here
        (0.5, 2.7, 1.7, -5.0),  # scipy returns -inf
        (15.5, 18.0, 30.0, -2.32),  # scipy returns a negative value; 2F1 > 0 here
        (11.0, 23.5, 31.0, 0.999),
        (0.2, 16.4, 8.37, 0.88),  # the z -> 1 - z connection formula
        (0.8, 4.0, 3.3, 0.6),
    ],
)
def test_hyp2f1_matches_the_euler_integral(a: float, b: float, c: float, z: float) -> None:
    b_int, a_int = (b, a) if c > b else (a, b)
    assert hyp2f1(a, b, c, z) == pytest.approx(euler_integral(a_int, b_int, c, z), rel=1e-9)


def test_hyp2f1_domain() -> None:
    with pytest.raises(ValueError):
        hyp2f1(1.0, 1.0, 2.0, 1.0)
    with pytest.raises(ValueError):
        hyp2f1(1.0, 1.0, -2.0, 0.5)
    assert hyp2f1(1.0, 1.0, 2.0, -1.0) == pytest.approx(math.log(2.0), rel=1e-14)


# --- expected_active_days -------------------------------------------------------------------

EXPECTED_PARAMS = [
    PARAMS,
    ModelParams(2.5, 0.7, 1.8, 0.4),
    ModelParams(1.2, 10.0, 1.0, 2.0),  # a = 1: the closed form's removable singularity
    ModelParams(1.2, 10.0, 0.995, 2.0),
    ModelParams(1.2, 10.0, 1.02, 2.0),
]
SUMMARIES = [(0, 0.0, 0.0), (0, 0.0, 40.0), (3, 10.0, 12.0), (20, 50.0, 90.0), (150, 170.0, 171.0)]


def posterior_integral(x: int, t_x: float, T: float, p: ModelParams, t: float) -> float:
    """P(alive) * E[(1 - (1 + p t / (alpha + T))^-(r + x)) / p], p ~ Beta(a, b + x + 1).

    Quadrature over the dropout posterior; no hypergeometric function involved.
    """
    dist = stats.beta(p.a, p.b + x + 1)

    def integrand(q: float) -> float:
        g = -math.expm1(-(p.r + x) * math.log1p(q * t / (p.alpha + T))) / q
        return g * float(dist.pdf(q))

    mean = integrate.quad(integrand, 0, 1, epsabs=0, epsrel=1e-12, limit=500, points=[1e-6, 1e-3])
    return naive_p_alive(x, t_x, T, p) * float(mean[0])


def scipy_closed_form(x: int, t_x: float, T: float, p: ModelParams, t: float) -> float:
    """Hoppe & Wagner's closed form with scipy.special.hyp2f1 (as in the lifetimes package)."""
    hyp = special.hyp2f1(p.r + x, p.b + x + 1, p.a + p.b + x, t / (p.alpha + T + t))
    bracket = 1 - hyp * ((p.alpha + T) / (p.alpha + T + t)) ** (p.r + x)
    return float(naive_p_alive(x, t_x, T, p) * (p.a + p.b + x) / (p.a - 1) * bracket)


@pytest.mark.parametrize("p", EXPECTED_PARAMS)
@pytest.mark.parametrize(("x", "t_x", "T"), SUMMARIES)
@pytest.mark.parametrize("t", [1.0, 7.0, 30.0])
def test_expected_active_days_matches_quadrature(
    p: ModelParams, x: int, t_x: float, T: float, t: float
) -> None:
    value = expected_active_days(x, t_x, T, p, t)
    assert value == pytest.approx(posterior_integral(x, t_x, T, p, t), rel=1e-7)
    if abs(p.a - 1) > 0.01:
        assert value == pytest.approx(scipy_closed_form(x, t_x, T, p, t), rel=1e-9)


def test_expected_active_days_continuous_across_the_a_near_one_switch() -> None:
    for a in (0.99, 1.01):
        below = expected_active_days(4, 9.0, 15.0, ModelParams(1.2, 10.0, a - 1e-12, 2.0))
        above = expected_active_days(4, 9.0, 15.0, ModelParams(1.2, 10.0, a + 1e-12, 2.0))
        assert below == pytest.approx(above, rel=1e-10)


def test_expected_active_days_edges() -> None:
    assert expected_active_days(3, 5.0, 9.0, PARAMS, t=0.0) == 0.0
    with pytest.raises(ValueError):
        expected_active_days(3, 5.0, 9.0, PARAMS, t=-1.0)
    # far beyond the last activity the user is almost surely gone
    assert expected_active_days(30, 40.0, 400.0, PARAMS) < 1e-6


def simulate_histories(p: ModelParams, n: int, T: float, t: float, seed: int) -> np.ndarray:
    """Event-by-event MBG/NBD simulation: rows of (x, t_x, activities in (T, T + t])."""
    rng = np.random.default_rng(seed)
    rows = np.zeros((n, 3))
    for i in range(n):
        lam, drop = rng.gamma(p.r, 1 / p.alpha), rng.beta(p.a, p.b)
        now, x, t_x, future = 0.0, 0, 0.0, 0
        alive = rng.random() >= drop  # dropout at time 0
        while alive:
            now += rng.exponential(1 / lam)
            if now > T + t:
                break
            if now <= T:
                x, t_x = x + 1, now
            else:
                future += 1
            alive = rng.random() >= drop
        rows[i] = (x, t_x, future)
    return rows


def test_expected_active_days_is_calibrated_on_a_simulated_population() -> None:
    """Sum of predictions vs realised activities in (T, T + 7], overall and by history.

    Tolerance: 4 standard errors of the realised total (the predictions are exact means).
    """
    T, t = 30.0, 7.0
    rows = simulate_histories(PARAMS, 20_000, T, t, seed=7)
    predicted = np.array([expected_active_days(int(x), tx, T, PARAMS, t) for x, tx, _ in rows])
    groups = {"all": rows[:, 0] >= 0, "x=0": rows[:, 0] == 0, "x>=5": rows[:, 0] >= 5}
    for name, mask in groups.items():
        realised = rows[mask, 2]
        tolerance = 4 * realised.std() * math.sqrt(mask.sum())
        assert abs(predicted[mask].sum() - realised.sum()) < tolerance, name


# --- usual_gap_of_bitmap -------------------------------------------------------------------


def median_gap(days: list[int]) -> float | None:
    """The oracle: the median of the gaps between consecutive distinct days."""
    distinct = sorted(set(days))
    if len(distinct) < 2:
        return None
    return float(statistics.median(b - a for a, b in itertools.pairwise(distinct)))


def bitmap(days: list[int]) -> int:
    """Bit i marks the day i days before the newest."""
    newest = max(days, default=0)
    return sum({1 << (newest - d) for d in days})


@pytest.mark.parametrize(
    ("days", "expected"),
    [
        ([], None),
        ([5], None),
        ([5, 5], None),
        ([1, 2, 3], 1.0),
        ([0, 2, 3, 10], 2.0),
        ([0, 1, 4], 2.0),
        ([10, 0, 4, 4, 1], 3.0),
    ],
)
def test_the_usual_gap_is_the_median_gap_between_active_days(
    days: list[int], expected: float | None
) -> None:
    assert usual_gap_of_bitmap(bitmap(days)) == expected


@given(st.integers(min_value=0, max_value=(1 << 300) - 1), st.integers(0, 10_000))
def test_the_usual_gap_of_a_bitmap_is_that_of_the_days_it_marks(bits: int, newest: int) -> None:
    marked = [newest - i for i in range(bits.bit_length()) if bits >> i & 1]
    assert usual_gap_of_bitmap(bits) == median_gap(marked)


def test_a_new_user_starts_at_b_over_a_plus_b_and_the_threshold_must_stay_below() -> None:
    p = ModelParams(r=0.8, alpha=4.0, a=0.3, b=3.0)
    for T in (0.0, 3.0, 50.0):
        assert p_alive(0, T, T, p) == pytest.approx(new_user_p_alive(p), rel=1e-12)
    assert new_user_p_alive(p) == pytest.approx(3.0 / 3.3)
    assert threshold_problem(p, 0.9) is None
    assert threshold_problem(p, 3.0 / 3.3) is not None
    assert threshold_problem(p, 0.95) is not None
