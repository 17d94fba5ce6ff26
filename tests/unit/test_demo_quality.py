"""Precision, recall and lead time of lapse signals against a hand-made simulator truth."""

from __future__ import annotations

import io

from schemas.records import Signal
from streams.demo.quality import lapses, print_quality, quality
from streams.tools.population import UserPlan

DAY_MS = 86_400_000
PLANS = [
    UserPlan(0, "a", 0, (0, 5), 5, None),
    UserPlan(1, "b", 0, (0, 10, 50), 10, 50),
    UserPlan(2, "c", 0, (0, 3, 20), 20, None),
    UserPlan(3, "d", 0, (75,), 75, None),
]


def signal(user: str, kind: str, day: float) -> Signal:
    ms = int(day * DAY_MS)
    return Signal(
        f"{user}-{kind}-{ms}", kind, user, "active", "x", ms, ms, "event", "deadline", "organic", {}
    )


SIGNALS = [
    signal("a", "churn_risk", 6.5),
    signal("a", "dormant", 12),
    signal("b", "churn_risk", 12),
    signal("b", "dormant", 17),
    signal("b", "churn_risk", 52),
    signal("b", "dormant", 57),
    signal("c", "churn_risk", 4),  # c comes back on day 20: wrong
    signal("c", "dormant", 10),  # wrong too
    signal("d", "churn_risk", 80),  # too close to the end to judge
]


def test_lapses_are_30_day_gaps_inside_the_simulation() -> None:
    assert lapses((0, 10, 50), 100) == [10, 50]
    assert lapses((0, 3, 20), 100) == [20]
    assert lapses((75,), 100) == []
    assert lapses((0, 31), 40) == [0]


def test_precision_recall_and_lead_time_by_hand() -> None:
    risk = quality("churn_risk", PLANS, SIGNALS, 0, 100)
    assert (risk.signals, risk.right, risk.users, risk.lapses, risk.caught) == (4, 3, 4, 4, 3)
    assert risk.precision == 0.75 and risk.recall == 0.75
    assert risk.median_lead_days == 28.0  # 35 - 6.5, 40 - 12, 80 - 52
    plain = quality("dormant", PLANS, SIGNALS, 0, 100)
    assert (plain.signals, plain.right, plain.users, plain.lapses, plain.caught) == (4, 3, 3, 4, 3)
    assert plain.median_lead_days == 23.0
    out = io.StringIO()
    print_quality([risk, plain], 7, out)
    assert "7 days inactive" in out.getvalue() and "75%" in out.getvalue()
