"""How good the lapse signals are, judged against the simulator's truth (the demo report).

The simulator knows every user's life (:class:`streams.tools.population.UserPlan`: the active
days it planned, with its dropouts and returns). Against that truth, for ``churn_risk`` and for
the plain rule "``N`` days inactive" (the ``dormant`` signal, ENGAGEMENT_DORMANT_AFTER):

* a **lapse** is an active day L after which the user has no active day for ``gone_days``
  (30, ENGAGEMENT_CHURNED_AFTER's default: the product's own churn definition); only lapses
  whose ``gone_days`` lie inside the simulation are judged, and L + ``gone_days`` is the moment
  the lapse is *known*;
* a signal on day s is **right** if the user has no active day in (s, s + ``gone_days``]
  (judged only when s + ``gone_days`` lies inside the simulation): **precision** is the share
  of judged signals that are right;
* a lapse is **caught** if a signal of the kind lies in [L, L + ``gone_days``): **recall** is
  the share of lapses caught, and the **lead time** of a caught lapse is L + ``gone_days``
  minus the signal's time, in days (median over caught lapses).
"""

from __future__ import annotations

import bisect
import itertools
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TextIO

from agents.logic.calibration import BAND_EDGES, Band
from agents.logic.days import DAY_MS
from schemas.records import Signal
from streams.tools.population import UserPlan

GONE_DAYS = 30
KINDS = ("churn_risk", "dormant")


@dataclass(frozen=True, slots=True)
class Quality:
    kind: str
    signals: int  # judged signals
    users: int  # users with at least one signal of the kind
    right: int
    lapses: int
    caught: int
    median_lead_days: float | None

    @property
    def precision(self) -> float | None:
        return self.right / self.signals if self.signals else None

    @property
    def recall(self) -> float | None:
        return self.caught / self.lapses if self.lapses else None


def lapses(active_days: Sequence[int], days: int, gone_days: int = GONE_DAYS) -> list[int]:
    """Active days followed by ``gone_days`` without activity, all inside ``days``."""
    out = []
    for i, day in enumerate(active_days):
        following = active_days[i + 1] if i + 1 < len(active_days) else days
        if following - day > gone_days and day + gone_days < days:
            out.append(day)
    return out


def quality(
    kind: str,
    plans: Iterable[UserPlan],
    signals: Iterable[Signal],
    start_ms: int,
    days: int,
    *,
    gone_days: int = GONE_DAYS,
) -> Quality:
    """The ``kind`` signals' precision, recall and lead time (module docstring)."""
    at: dict[str, list[float]] = {}
    for signal in signals:
        if signal.kind == kind:
            at.setdefault(signal.user_id, []).append((signal.event_time_ms - start_ms) / DAY_MS)
    judged = right = n_lapses = caught = 0
    leads: list[float] = []
    for plan in plans:
        active, times = sorted(plan.active_days), sorted(at.get(plan.user_id, ()))
        for t in times:
            if int(t) + gone_days < days:
                judged += 1
                after = bisect.bisect_right(active, int(t))
                right += after == len(active) or active[after] > int(t) + gone_days
        for lapse in lapses(active, days, gone_days):
            n_lapses += 1
            inside = [t for t in times if lapse <= t < lapse + gone_days]
            if inside:
                caught += 1
                leads.append(lapse + gone_days - min(inside))
    median = statistics.median(leads) if leads else None
    return Quality(kind, judged, len(at), right, n_lapses, caught, median)


def print_quality(rows: Sequence[Quality], dormant_days: float, out: TextIO) -> None:
    def share(value: float | None) -> str:
        return "-" if value is None else f"{value:.0%}"

    print(
        f"\nsignal quality against the simulator's truth (a lapse: {GONE_DAYS} days without "
        "activity)",
        file=out,
    )
    print(f"{'rule':<30}{'users':>7}{'precision':>11}{'recall':>8}{'median lead':>13}", file=out)
    names = {"churn_risk": "churn_risk (P(alive))", "dormant": f"{dormant_days:g} days inactive"}
    for row in rows:
        lead = "-" if row.median_lead_days is None else f"{row.median_lead_days:.1f} d"
        print(
            f"{names.get(row.kind, row.kind):<30}{row.users:>7,}{share(row.precision):>11}"
            f"{share(row.recall):>8}{lead:>13}",
            file=out,
        )


def print_model(metrics: dict[str, float], out: TextIO) -> None:
    """The parameters in use and the calibration by P(alive) band, from /metrics."""
    names = ("r", "alpha", "a", "b")
    values = [metrics.get(f'engagement_model_parameter{{name="{n}"}}') for n in names]
    if any(v is None for v in values):
        return
    users = metrics.get("engagement_model_fit_users", 0.0)
    shown = ", ".join(f"{n}={v:.3g}" for n, v in zip(names, values, strict=True))
    fitted = f"refitted on {users:,.0f} users" if users else "not refitted"
    print(f"\nchurn model in use: {shown} ({fitted})", file=out)
    print(
        f"{'P(alive) band':<16}{'users':>8}{'predicted':>11}{'actual':>9}  (active days, 7 d)",
        file=out,
    )
    for lower, upper in itertools.pairwise(BAND_EDGES):
        band = Band(lower, upper).label
        n = metrics.get(f'engagement_model_calibration_users{{band="{band}"}}', 0.0)
        predicted = metrics.get(
            f'engagement_model_calibration_predicted_visits{{band="{band}"}}', 0.0
        )
        actual = metrics.get(f'engagement_model_calibration_actual_visits{{band="{band}"}}', 0.0)
        print(f"{band:<16}{n:>8,.0f}{predicted:>11,.1f}{actual:>9,.0f}", file=out)
    print_risk_returns(metrics, out)


def print_risk_returns(metrics: dict[str, float], out: TextIO) -> None:
    """Return rates of lapsed users signalled churn_risk or not (README, "The live model")."""
    print(f"{'lapsed users':<16}{'back in 7 d':>16}{'back in 30 d':>16}", file=out)
    for group in ("signalled", "not_signalled"):
        cells = []
        for window in (7, 30):
            labels = f'{{group="{group}",window="{window}"}}'
            n = metrics.get(f"engagement_model_churn_risk_eligible_users{labels}", 0.0)
            back = metrics.get(f"engagement_model_churn_risk_return_users{labels}", 0.0)
            rate = f"{back / n:.0%}" if n else "-"
            cells.append(f"{rate} of {n:,.0f}")
        print(f"{group:<16}{cells[0]:>16}{cells[1]:>16}", file=out)
