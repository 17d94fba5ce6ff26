"""The uplift estimator alone, statistically: its interval covers the true uplift at least at
its nominal rate, and with no effect it declares a difference no more often than its nominal
error, even when looked at after every day (what a live dashboard does)."""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import pytest

from streams.tools.sequential import ALPHA, Uplift, estimate

SEEDS = 800
DAYS = 30
# Monte Carlo slack: with 800 seeds the standard error of a 5 % rate is about 0.8 points
SLACK = 0.016


def daily_runs(
    seed: int, effect: float, base: float, per_day: int, share: float = 0.1
) -> list[tuple[int, int, int, int]]:
    """Cumulative (treated, returned, held out, returned) after each day of signals."""
    rnd = random.Random(seed)
    nt = yt = nh = yh = 0
    out = []
    for _ in range(DAYS):
        for _ in range(per_day):
            if rnd.random() < share:
                nh += 1
                yh += rnd.random() < base
            else:
                nt += 1
                yt += rnd.random() < base + effect
        out.append((nt, yt, nh, yh))
    return out


def error_rate(effect: float, base: float, per_day: int, wrong: Callable[[Uplift], bool]) -> float:
    """Share of seeds on which the interval was wrong on at least one day it spoke."""
    failures = 0
    for seed in range(SEEDS):
        looks = (estimate(*counts) for counts in daily_runs(seed, effect, base, per_day))
        failures += any(wrong(u) for u in looks if not u.too_early)
    return failures / SEEDS


@pytest.mark.parametrize(
    ("effect", "base", "per_day"),
    [(0.10, 0.30, 150), (0.05, 0.20, 40), (0.03, 0.02, 60)],
)
def test_the_interval_covers_the_true_uplift_on_every_day(
    effect: float, base: float, per_day: int
) -> None:
    missed = error_rate(effect, base, per_day, lambda u: not u.low <= effect <= u.high)
    assert missed <= ALPHA + SLACK, missed


@pytest.mark.parametrize(("base", "per_day"), [(0.30, 150), (0.05, 40)])
def test_no_effect_is_declared_at_most_at_the_nominal_error_checking_daily(
    base: float, per_day: int
) -> None:
    declared = error_rate(0.0, base, per_day, lambda u: u.verdict != "no difference yet")
    assert declared <= ALPHA + SLACK, declared


def test_a_fixed_sample_interval_checked_daily_would_not_hold() -> None:
    """Why the always-valid interval: the usual 95 % interval, looked at every day, errs more."""

    def wald_declares(counts: tuple[int, int, int, int]) -> bool:
        nt, yt, nh, yh = counts
        rt, rh = yt / nt, yh / nh
        se = math.sqrt(rt * (1 - rt) / nt + rh * (1 - rh) / nh)
        return abs(rt - rh) > 1.96 * se

    declared = sum(
        any(wald_declares(c) for c in daily_runs(seed, 0.0, 0.3, 150)) for seed in range(SEEDS)
    )
    assert declared / SEEDS > 2 * ALPHA


def test_plain_language_and_too_early() -> None:
    early = estimate(100, 30, 5, 1)
    assert early.too_early and early.explain().startswith("Too early to tell")
    clear = estimate(9000, 4000, 1000, 300)
    assert clear.verdict == "more return" and clear.low > 0
    assert math.isclose(clear.difference, 4000 / 9000 - 0.3)
    assert "brings more users back" in clear.explain()
