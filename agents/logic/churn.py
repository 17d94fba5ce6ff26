"""The MBG/NBD churn model: pure functions of (x, t_x, T) and the population parameters.

Time is in days. For one user, x = repeat active days, t_x = days from the first to the last
active day, T = days from the first active day to now (see ARCHITECTURE.md, "Churn risk").

Model (Batislam, Denizel & Filiztekin 2007; Hoppe & Wagner 2007/2008): while alive a user is
active at Poisson rate lambda ~ Gamma(r, alpha) (alpha = inverse scale); at time 0 and after
every repeat activity the user drops out with probability p ~ Beta(a, b).

Standard library only (``math``): this runs on the hot path, once per user decision.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from os import PathLike
from pathlib import Path
from typing import Final

import orjson

MODEL_NAME: Final = "mbgnbd"
TIME_UNIT: Final = "day"

_EPS: Final = 1e-16
_MAX_TERMS: Final = 500_000
_NEAR_ONE: Final = 0.75  # above this z, hyp2f1 uses the z -> 1 - z connection formula
_NEAR_INT: Final = 1e-3  # ... unless c - a - b is this close to an integer (it degenerates)
_MAX_CANCEL: Final = 1e3  # ... and its two parts do not cancel more than this
_A_NEAR_ONE: Final = 1e-2  # |a - 1| below this: the closed form's 1/(a - 1) cancels badly

# bound once: mypyc has no primitive for these, and compiled, ``math.expm1(x)`` looks the name
# up in the module at each call (the risk deadline's, once per fold of a live user)
_LOG1P: Final = math.log1p
_EXPM1: Final = math.expm1

Metadata = dict[str, float | int | str]


@dataclass(frozen=True, slots=True)
class ModelParams:
    """Population parameters: lambda ~ Gamma(r, alpha), dropout p ~ Beta(a, b); time in days."""

    r: float
    alpha: float
    a: float
    b: float

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ValueError(f"ModelParams.{name} must be a finite number > 0, got {value!r}")

    def to_json(self, metadata: Metadata | None = None) -> bytes:
        """The parameters file: model, time unit, parameters and optional fit metadata.

        ``metadata`` (e.g. ``log_likelihood``, ``n_users``, ``fitted_at``) is stored under
        ``"fit"`` as given by the caller.
        """
        doc: dict[str, object] = {
            "model": MODEL_NAME,
            "time_unit": TIME_UNIT,
            "params": asdict(self),
        }
        if metadata:
            doc["fit"] = dict(metadata)
        return orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)

    @classmethod
    def from_json(cls, data: bytes) -> ModelParams:
        """Parse a parameters file; ValueError if it is not an MBG/NBD model in days."""
        doc = orjson.loads(data)
        if not isinstance(doc, dict):
            raise ValueError("parameters file must be a JSON object")
        if doc.get("model") != MODEL_NAME or doc.get("time_unit") != TIME_UNIT:
            raise ValueError(
                f"expected model={MODEL_NAME!r} time_unit={TIME_UNIT!r}, "
                f"got model={doc.get('model')!r} time_unit={doc.get('time_unit')!r}"
            )
        params = doc.get("params")
        if not isinstance(params, dict) or set(params) != {"r", "alpha", "a", "b"}:
            raise ValueError("'params' must hold exactly r, alpha, a, b")
        return cls(**{key: float(value) for key, value in params.items()})

    @classmethod
    def load(cls, path: str | PathLike[str]) -> ModelParams:
        return cls.from_json(Path(path).read_bytes())

    def save(self, path: str | PathLike[str], metadata: Metadata | None = None) -> None:
        Path(path).write_bytes(self.to_json(metadata))


def new_user_p_alive(p: ModelParams) -> float:
    """P(alive) of a one-time user right after that visit (x = 0, t_x = T): b / (a + b).

    P(alive) only falls from there while the user stays away, so no user is ever more alive
    than this between visits."""
    return p.b / (p.a + p.b)


def threshold_problem(p: ModelParams, threshold: float) -> str | None:
    """Why ``threshold`` cannot work with ``p``, or None if it can.

    At or above b / (a + b) every new single-visit user is below the threshold the moment they
    arrive: the churn-risk signal would flag them all and say nothing."""
    ceiling = new_user_p_alive(p)
    if threshold >= ceiling:
        return (
            f"{threshold:g} is at or above b/(a+b) = {ceiling:.4g} for r={p.r:.4g}, "
            f"alpha={p.alpha:.4g}, a={p.a:.4g}, b={p.b:.4g}: every new single-visit user "
            "would be at risk on arrival"
        )
    return None


def _check_summary(x: int, t_x: float, T: float) -> None:
    if x < 0 or t_x < 0 or t_x > T:
        raise ValueError(f"need x >= 0 and 0 <= t_x <= T, got x={x}, t_x={t_x}, T={T}")


def _log_odds_dead(x: int, t_x: float, T: float, p: ModelParams) -> float:
    """log of (a / (b + x)) * ((alpha + T) / (alpha + t_x)) ** (r + x)."""
    log_growth = math.log1p((T - t_x) / (p.alpha + t_x))
    return math.log(p.a) - math.log(p.b + x) + (p.r + x) * log_growth


def p_alive(x: int, t_x: float, T: float, p: ModelParams) -> float:
    """P(alive | x, t_x, T) = 1 / (1 + (a / (b + x)) * ((alpha + T) / (alpha + t_x)) ** (r + x)).

    Evaluated through the log of the odds, so large x and T neither overflow nor lose precision.
    At T = t_x it equals (b + x) / (a + b + x): the user may have dropped out right after the last
    activity. Raises ValueError unless x >= 0 and 0 <= t_x <= T.
    """
    _check_summary(x, t_x, T)
    z = _log_odds_dead(x, t_x, T, p)
    if z > 0:
        e = math.exp(-z)
        return e / (1.0 + e)
    return 1.0 / (1.0 + math.exp(z))


def risk_deadline_T(x: int, t_x: float, p: ModelParams, threshold: float) -> float:
    """The age T* at which P(alive) falls to ``threshold`` (p*) if the user stays inactive.

    T* = (alpha + t_x) * ((1/p* - 1) * (b + x) / a) ** (1 / (r + x)) - alpha, computed as
    t_x + (alpha + t_x) * expm1(L) with L = log((1/p* - 1) * (b + x) / a) / (r + x).

    T* <= t_x means P(alive) is already at or below p* right after the last activity
    (p* >= (b + x) / (a + b + x)); the value is returned as is and the caller compares it with
    the current T. Returns ``math.inf`` if T* overflows a float (the deadline never comes).
    """
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}")
    if x < 0 or t_x < 0:
        raise ValueError(f"need x >= 0 and t_x >= 0, got x={x}, t_x={t_x}")
    log_odds = _LOG1P(-threshold) - math.log(threshold)
    big_l = (log_odds + math.log(p.b + x) - math.log(p.a)) / (p.r + x)
    try:
        return t_x + (p.alpha + t_x) * _EXPM1(big_l)
    except OverflowError:
        return math.inf


def _series_2f1(a: float, b: float, c: float, z: float) -> tuple[float, float]:
    """Gauss series sum_k (a)_k (b)_k / ((c)_k k!) z^k for |z| < 1, and the sum of |terms|."""
    term = total = size = 1.0
    tol = _EPS * (1.0 - abs(z))  # the tail after a small term is about term / (1 - |z|)
    for k in range(_MAX_TERMS):
        term *= (a + k) * (b + k) / ((c + k) * (k + 1)) * z
        total += term
        size += abs(term)
        next_ratio = abs((a + k + 1) * (b + k + 1) / ((c + k + 1) * (k + 2)) * z)
        if term == 0.0 or (abs(term) <= tol * abs(total) and next_ratio < 1.0):
            return total, size
    raise ArithmeticError(f"hyp2f1 series did not converge: a={a}, b={b}, c={c}, z={z}")


def _rgamma_ratio(num: tuple[float, ...], den: tuple[float, ...]) -> float:
    """prod Gamma(num) / prod Gamma(den); 0 if a denominator argument is a pole."""
    sign, log_total = 1.0, 0.0
    for args, s in ((num, 1.0), (den, -1.0)):
        for v in args:
            if v <= 0 and v == math.floor(v):
                if s < 0:
                    return 0.0
                raise ValueError(f"Gamma pole at {v}")
            if v < 0 and math.floor(-v) % 2 == 0:
                sign = -sign  # Gamma(v) < 0 on (-1, 0), (-3, -2), ...
            log_total += s * math.lgamma(v)
    return sign * math.exp(log_total)


def _connection_1mz(a: float, b: float, c: float, z: float) -> float | None:
    """2F1 through the z -> 1 - z connection formula, or None if it cancels too badly."""
    s, w = c - a - b, 1.0 - z
    f1, size1 = _series_2f1(a, b, 1.0 - s, w)
    f2, size2 = _series_2f1(c - a, c - b, 1.0 + s, w)
    g1 = _rgamma_ratio((c, s), (c - a, c - b))
    g2 = _rgamma_ratio((c, -s), (a, b)) * math.pow(w, s)
    value = g1 * f1 + g2 * f2
    if abs(g1) * size1 + abs(g2) * size2 > _MAX_CANCEL * abs(value):
        return None
    return value


def hyp2f1(a: float, b: float, c: float, z: float) -> float:
    """Gauss hypergeometric function 2F1(a, b; c; z) for real z < 1.

    - z < 0: Pfaff, 2F1(a, b; c; z) = (1 - z)^-a 2F1(a, c - b; c; z / (z - 1)), new z in (0, 1),
      with a and b swapped if that makes c - b >= 0;
    - z > 0.75 and c - a - b not near an integer: the connection formula in 1 - z,
      A 2F1(a, b; a + b - c + 1; 1 - z) + B (1 - z)^(c-a-b) 2F1(c - a, c - b; c - a - b + 1; 1 - z)
      with A = G(c) G(c-a-b) / (G(c-a) G(c-b)) and B = G(c) G(a+b-c) / (G(a) G(b)),
      used only if its two parts do not cancel (they do for large a, b);
    - otherwise the plain series (slower as z -> 1, but for a, b, c > 0 all its terms are > 0).

    Accurate to ~1e-12 relative where the series has positive terms: a, b, c > 0, and for z < 0
    also c >= min(a, b) -- the churn model only needs a, b, c > 0 and 0 <= z < 1. Outside that
    the result can lose digits to cancellation.
    """
    if z >= 1.0:
        raise ValueError(f"hyp2f1 is implemented for z < 1, got {z}")
    if c <= 0 and c == math.floor(c):
        raise ValueError(f"hyp2f1 undefined for c a non-positive integer, got {c}")
    if z < 0.0:
        if c - b < 0 <= c - a:
            a, b = b, a  # 2F1 is symmetric in (a, b): keep the Pfaff series' terms positive
        return math.pow(1.0 - z, -a) * hyp2f1(a, c - b, c, z / (z - 1.0))
    s = c - a - b
    if z > _NEAR_ONE and abs(s - round(s)) > _NEAR_INT:
        value = _connection_1mz(a, b, c, z)
        if value is not None:
            return value
    return _series_2f1(a, b, c, z)[0]


def _expected_while_alive_series(r_post: float, b_post: float, a: float, w: float) -> float:
    """E[(1 - (1 - w) ** r' (1 - w q) ** -r') / p], q = 1 - p, p ~ Beta(a, b'); all terms > 0.

    Expanding both powers in w gives (1 - w)^r' sum_{k>=1} (r')_k w^k / k! S_k with
    S_k = sum_{j<k} E[q^j] = sum_{j<k} (b')_j / (a + b')_j. No pole at a = 1, no cancellation.
    """
    coef, s_k, eq_j, total = 1.0, 0.0, 1.0, 0.0
    tol = _EPS * (1.0 - w)
    for k in range(1, _MAX_TERMS):
        coef *= (r_post + k - 1) / k * w
        s_k += eq_j
        eq_j *= (b_post + k - 1) / (a + b_post + k - 1)
        term = coef * s_k
        total += term
        if term <= tol * total and (r_post + k) * w < k:
            return total * math.pow(1.0 - w, r_post)
    raise ArithmeticError(f"expected-value series did not converge: r'={r_post}, w={w}")


def expected_active_days(
    x: int, t_x: float, T: float, p: ModelParams, t: float = 7.0, *, alive: float | None = None
) -> float:
    """E[number of repeat activities in (T, T + t] | x, t_x, T] under MBG/NBD.

    Hoppe & Wagner's closed form (the erratum to Batislam et al.), with z = t / (alpha + T + t):

        P(alive) * (a + b + x) / (a - 1)
          * (1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * 2F1(r + x, b + x + 1; a + b + x; z))

    It is the posterior mean of (1/p)(1 - exp(-lambda p t)) given alive, with lambda ~
    Gamma(r + x, alpha + T) and p ~ Beta(a, b + x + 1). It holds for any a > 0 (analytic in a),
    but 1/(a - 1) cancels badly near a = 1; there the equivalent positive series is used.

    ``alive``: ``p_alive(x, t_x, T, p)`` when the caller has it already (a signal's reasons
    report both).
    """
    if t < 0:
        raise ValueError(f"t must be >= 0, got {t}")
    if alive is None:
        alive = p_alive(x, t_x, T, p)
    if t == 0:
        return 0.0
    r_post, b_post = p.r + x, p.b + x + 1.0
    w = t / (p.alpha + T + t)
    if abs(p.a - 1.0) < _A_NEAR_ONE:
        return alive * _expected_while_alive_series(r_post, b_post, p.a, w)
    hyp = hyp2f1(r_post, b_post, p.a + b_post - 1.0, w)
    bracket = -math.expm1(r_post * math.log1p(-w) + math.log(hyp))
    return alive * (p.a + p.b + x) / (p.a - 1.0) * bracket


def usual_gap_of_bitmap(days: int) -> float | None:
    """Median gap in days between consecutive active days of a day bitmap (bit i: i days before
    the newest); None with fewer than 2. Read off its set bits, without listing the days."""
    gaps: list[int] = []
    previous = -1
    while days:
        low = days & -days
        i = low.bit_length() - 1
        if previous >= 0:
            gaps.append(i - previous)
        previous = i
        days ^= low
    if not gaps:
        return None
    gaps.sort()
    mid = len(gaps) // 2
    if len(gaps) % 2:
        return float(gaps[mid])
    return (gaps[mid - 1] + gaps[mid]) / 2.0
