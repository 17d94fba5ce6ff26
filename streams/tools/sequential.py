"""An always-valid confidence interval for the uplift of a win-back: treatment minus holdout
return rate, safe to look at after every scrape.

Each signalled user whose window has closed is one observation: their arm A (treatment with
probability p, the share not held out) and whether they returned, Y. With the inverse-propensity
score ``psi = A*Y/p - (1-A)*Y/(1-p)``, E[psi] is the uplift. This module uses the arms' observed
share as p, which makes the mean of psi exactly the difference of the two observed return rates,
and surrounds it with the asymptotic confidence sequence of Waudby-Smith, Arbour, Sinha, Kennedy
and Ramdas ("Time-uniform central limit theory and asymptotic confidence sequences", 2021; its
boundary is the two-sided normal mixture of Howard, Ramdas, McAuliffe and Sekhon, 2021)::

    mean(psi) +/- sd(psi) * sqrt( 2 (n rho^2 + 1) / (n^2 rho^2) * log( sqrt(n rho^2 + 1) / alpha ) )

``rho`` tunes where the interval is tightest; it is fixed in advance (from ``planned_n``), never
from the data. The interval holds at level 1 - alpha *simultaneously at every n*: checking it
after every day, and stopping as soon as it excludes zero, keeps the error rate at alpha (a
fixed-n interval checked daily would not). It is asymptotic: with few users per arm it is not
trusted, and :func:`estimate` says "too early to tell" below ``min_per_arm``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

ALPHA = 0.05
PLANNED_N = 2_000  # rho is tuned for the interval to be tightest around this many users
MIN_PER_ARM = 30


def mixture_rho(planned_n: int, alpha: float = ALPHA) -> float:
    """The mixture parameter that makes the boundary tightest at ``planned_n`` observations."""
    log_term = -2 * math.log(alpha)
    return math.sqrt((log_term + math.log(log_term + 1)) / planned_n)


def radius(n: int, sd: float, alpha: float = ALPHA, planned_n: int = PLANNED_N) -> float:
    """Half-width of the confidence sequence after ``n`` observations with standard deviation
    ``sd`` (module docstring)."""
    if n <= 0:
        return math.inf
    rho2 = mixture_rho(planned_n, alpha) ** 2
    width = 2 * (n * rho2 + 1) / (n * n * rho2) * math.log(math.sqrt(n * rho2 + 1) / alpha)
    return sd * math.sqrt(width)


@dataclass(frozen=True, slots=True)
class Uplift:
    """The comparison of the two arms for one signal kind and window."""

    treated: int  # signals in the treatment arm whose window has closed
    treated_returned: int
    held_out: int
    held_out_returned: int
    low: float
    high: float
    alpha: float
    min_per_arm: int

    @property
    def treatment_rate(self) -> float:
        return self.treated_returned / self.treated if self.treated else math.nan

    @property
    def holdout_rate(self) -> float:
        return self.held_out_returned / self.held_out if self.held_out else math.nan

    @property
    def difference(self) -> float:
        return self.treatment_rate - self.holdout_rate

    @property
    def too_early(self) -> bool:
        return min(self.treated, self.held_out) < self.min_per_arm

    @property
    def verdict(self) -> str:
        """``too early``, ``more return``, ``fewer return`` or ``no difference yet``."""
        if self.too_early:
            return "too early"
        if self.low > 0:
            return "more return"
        if self.high < 0:
            return "fewer return"
        return "no difference yet"

    def explain(self) -> str:
        """The verdict in plain language."""
        level = f"{1 - self.alpha:.0%}"
        if self.too_early:
            return (
                f"Too early to tell: fewer than {self.min_per_arm} users in an arm whose window "
                f"has closed (treatment {self.treated}, holdout {self.held_out})."
            )
        span = f"{100 * self.low:+.1f} to {100 * self.high:+.1f} points"
        if self.low > 0:
            return f"Acting on signals brings more users back: {span} ({level} sure)."
        if self.high < 0:
            return f"Acting on signals brings fewer users back: {span} ({level} sure)."
        return (
            f"No difference shown yet: the uplift is somewhere in {span}, which includes 0. "
            "The interval narrows as more windows close; it stays valid however often you look."
        )


def estimate(
    treated: int,
    treated_returned: int,
    held_out: int,
    held_out_returned: int,
    *,
    alpha: float = ALPHA,
    planned_n: int = PLANNED_N,
    min_per_arm: int = MIN_PER_ARM,
) -> Uplift:
    """The uplift and its always-valid interval from the four counts (module docstring)."""
    n = treated + held_out
    if treated == 0 or held_out == 0:
        return Uplift(
            treated, treated_returned, held_out, held_out_returned, -1.0, 1.0, alpha, min_per_arm
        )
    diff = treated_returned / treated - held_out_returned / held_out
    # the variance of psi, with each arm's rate shrunk towards 1/2 by one pseudo-return and one
    # pseudo-non-return (rare returns would otherwise make it, and the interval, far too small)
    rate_t = (treated_returned + 1) / (treated + 2)
    rate_h = (held_out_returned + 1) / (held_out + 2)
    second = n * (rate_t / treated + rate_h / held_out)
    sd = math.sqrt(max(second - (rate_t - rate_h) ** 2, 0.0))
    r = radius(n, sd, alpha, planned_n)
    low, high = max(diff - r, -1.0), min(diff + r, 1.0)
    return Uplift(
        treated, treated_returned, held_out, held_out_returned, low, high, alpha, min_per_arm
    )
