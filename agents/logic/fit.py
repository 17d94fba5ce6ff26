"""Maximum-likelihood fit of the MBG/NBD population parameters (``engagement fit``).

The transaction unit is the **active day**: a user's first active day is time 0, each later
distinct active day is one repeat transaction, and time is counted in whole days. So
x = active days - 1, t_x = last active day - first active day, T = today - first active day.

numpy and scipy are imported inside the functions: importing this module stays cheap, and the
worker never needs it (it only reads the parameters file, see ``churn.ModelParams.load``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from agents.logic.churn import ModelParams

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    Array = NDArray[np.float64]

_LOG_BOUND: Final = 15.0  # each log-parameter is kept in [-15, 15] (e^15 ~ 3.3e6)


@dataclass(frozen=True)
class Summary:
    """One user's history in days: x repeat active days, t_x to the last one, T to now."""

    x: int
    t_x: float
    T: float


@dataclass(frozen=True)
class FitResult:
    params: ModelParams
    log_likelihood: float  # total over users, without the penalty
    n_users: int
    converged: bool
    message: str


def summaries_from_events(
    events: Iterable[tuple[str, int]], now_ms: int, day_of: Callable[[int], int]
) -> list[Summary]:
    """(user_id, timestamp_ms) pairs -> one Summary per user, ordered by user id.

    Active days are the distinct ``day_of(ts)``; x = active days - 1, t_x = last - first active
    day, T = ``day_of(now_ms)`` - first active day. Events after ``now_ms`` are ignored (the
    summaries describe the population as of now); a user with no event left has no summary.
    """
    days_by_user: dict[str, set[int]] = {}
    for user_id, ts in events:
        if ts <= now_ms:
            days_by_user.setdefault(user_id, set()).add(day_of(ts))
    today = day_of(now_ms)
    summaries = []
    for user_id in sorted(days_by_user):
        days = days_by_user[user_id]
        first, last = min(days), max(days)
        summaries.append(Summary(x=len(days) - 1, t_x=float(last - first), T=float(today - first)))
    return summaries


def _compress(summaries: Iterable[Summary]) -> tuple[Array, Array, Array, Array]:
    """Unique (x, t_x, T) rows and their counts, as float arrays."""
    import numpy as np

    rows = np.array([(s.x, s.t_x, s.T) for s in summaries], dtype=np.float64).reshape(-1, 3)
    if (rows < 0).any() or (rows[:, 1] > rows[:, 2]).any():
        raise ValueError("summaries need x >= 0 and 0 <= t_x <= T")
    unique, counts = np.unique(rows, axis=0, return_counts=True)
    return unique[:, 0], unique[:, 1], unique[:, 2], counts.astype(np.float64)


def _log_lik_rows(log_params: Array, x: Array, t_x: Array, T: Array) -> Array:
    """Per-row MBG/NBD log-likelihood (Batislam et al. 2007, dropout possible at time 0).

    L = Gamma(r + x) alpha^r / Gamma(r) * B(a, b + x + 1) / B(a, b) * (alpha + T)^-(r + x)
        * (1 + a / (b + x) * ((alpha + T) / (alpha + t_x))^(r + x))

    From: (1 - p)^x lambda^x e^(-lambda t_x) * (p + (1 - p) e^(-lambda (T - t_x))), integrated
    over lambda ~ Gamma(r, alpha) and p ~ Beta(a, b).
    """
    import numpy as np
    from scipy.special import betaln, gammaln

    r, alpha, a, b = np.exp(log_params)
    rx = r + x
    head = gammaln(rx) - gammaln(r) + r * np.log(alpha) - rx * np.log(alpha + T)
    beta_part = betaln(a, b + x + 1.0) - betaln(a, b)
    log_odds_dead = np.log(a) - np.log(b + x) + rx * (np.log(alpha + T) - np.log(alpha + t_x))
    result: Array = head + beta_part + np.logaddexp(0.0, log_odds_dead)
    return result


def log_likelihood(params: ModelParams, summaries: Iterable[Summary]) -> float:
    """Sum over users of the MBG/NBD individual log-likelihood (see ``_log_lik_rows``)."""
    import numpy as np

    x, t_x, T, counts = _compress(summaries)
    log_params = np.log([params.r, params.alpha, params.a, params.b])
    return float(counts @ _log_lik_rows(log_params, x, t_x, T))


def fit(
    summaries: Sequence[Summary],
    initial: ModelParams | None = None,
    penalizer: float = 0.0,
) -> FitResult:
    """Maximum likelihood over log-parameters (L-BFGS-B, Nelder-Mead if that fails).

    Minimises -mean log-likelihood + penalizer * (r^2 + alpha^2 + a^2 + b^2), the same shrinkage
    as the ``lifetimes`` package; penalizer=0 is the plain MLE.
    """
    if not summaries:
        raise ValueError("cannot fit on zero summaries")
    return _fit_arrays(*_compress(summaries), initial=initial, penalizer=penalizer)


def fit_rows(
    rows: Mapping[tuple[int, int, int], int],
    initial: ModelParams | None = None,
    penalizer: float = 0.0,
) -> FitResult:
    """:func:`fit` on compressed rows: (x, t_x, T) in whole days -> number of users with it
    (what the worker's partitions publish, :mod:`agents.logic.model`)."""
    import numpy as np

    kept = [(key, n) for key, n in rows.items() if n > 0]
    if not kept:
        raise ValueError("cannot fit on zero summaries")
    keys = np.array([key for key, _ in kept], dtype=np.float64).reshape(-1, 3)
    if (keys < 0).any() or (keys[:, 1] > keys[:, 2]).any():
        raise ValueError("summaries need x >= 0 and 0 <= t_x <= T")
    counts = np.array([n for _, n in kept], dtype=np.float64)
    arrays = (keys[:, 0], keys[:, 1], keys[:, 2], counts)
    return _fit_arrays(*arrays, initial=initial, penalizer=penalizer)


def _fit_arrays(
    x: Array,
    t_x: Array,
    T: Array,
    counts: Array,
    *,
    initial: ModelParams | None,
    penalizer: float,
) -> FitResult:
    import numpy as np
    from scipy.optimize import minimize

    n_users = float(counts.sum())

    def objective(log_params: Array) -> float:
        mean_ll = float(counts @ _log_lik_rows(log_params, x, t_x, T)) / n_users
        return -mean_ll + penalizer * float(np.sum(np.exp(2.0 * log_params)))

    start = initial or ModelParams(r=1.0, alpha=max(float(np.mean(T)), 1.0), a=1.0, b=1.0)
    x0 = np.log([start.r, start.alpha, start.a, start.b])
    bounds = [(-_LOG_BOUND, _LOG_BOUND)] * 4
    result = minimize(objective, x0, method="L-BFGS-B", bounds=bounds)
    if not result.success:
        result = minimize(
            objective, result.x, method="Nelder-Mead", options={"maxiter": 4000, "xatol": 1e-8}
        )
    r, alpha, a, b = (float(v) for v in np.exp(result.x))
    params = ModelParams(r=r, alpha=alpha, a=a, b=b)
    total = float(counts @ _log_lik_rows(result.x, x, t_x, T))
    return FitResult(params, total, int(n_users), bool(result.success), str(result.message))


def simulate_mbgnbd(
    params: ModelParams, n_users: int, T_days: float | Sequence[float], seed: int
) -> list[Summary]:
    """Draw a population from MBG/NBD and observe each user over [0, T] (continuous time).

    Per user: lambda ~ Gamma(r, scale 1/alpha), p ~ Beta(a, b). The number of repeat
    transactions the user would make if watched forever is N with P(N >= n) = (1 - p)^n (dropout
    at time 0 and after each repeat); the Poisson(lambda) process has M ~ Poisson(lambda T)
    arrivals in [0, T]. So x = min(N, M), and t_x is the x-th of M uniform arrival times on
    [0, T], i.e. T * Beta(x, M - x + 1) (0 when x = 0). ``T_days`` is one T or one per user.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    T = np.broadcast_to(np.asarray(T_days, dtype=np.float64), (n_users,))
    lam = rng.gamma(params.r, 1.0 / params.alpha, size=n_users)
    p = rng.beta(params.a, params.b, size=n_users)
    n_before_dropout = rng.geometric(p) - 1
    arrivals = rng.poisson(lam * T)
    x = np.minimum(n_before_dropout, arrivals)
    has_repeat = x > 0
    t_x = np.zeros(n_users)
    t_x[has_repeat] = T[has_repeat] * rng.beta(
        x[has_repeat], arrivals[has_repeat] - x[has_repeat] + 1
    )
    return [Summary(int(xi), float(ti), float(Ti)) for xi, ti, Ti in zip(x, t_x, T, strict=True)]
