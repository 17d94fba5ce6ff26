"""Return rates of lapsed users signalled churn_risk or not: the split read from state (active-day
bitmap, last churn_risk mark) equals the definition applied to plain data.

The oracle (:func:`oracle`) uses the standard library only: per user a set of active days and
the day of their last churn_risk signal, and the definition of README's "The live model"
written out on sets.
"""

from __future__ import annotations

import random
from collections import Counter

from prometheus_client import CollectorRegistry

from agents.logic.days import DAY_MS, Calendar
from agents.logic.risk_returns import RiskReturns, classify, last_active_by
from agents.logic.state import UserState
from schemas.records import SIGNAL_KINDS
from streams.worker.model_metrics import ModelMetrics

TODAY = 20_000  # a calendar day number (UTC)
User = tuple[set[int], int | None]  # active days, day of the last churn_risk signal
Tally = Counter[tuple[str, int]]  # (group, window) -> users


def oracle(users: list[User], today: int) -> tuple[Tally, Tally]:
    eligible: Tally = Counter()
    returned: Tally = Counter()
    for days, flag in users:
        for window in (7, 30):
            ref = today - window - 1
            before = [d for d in days if d <= ref]
            if not before or not ref - 30 <= max(before) <= ref - 1:
                continue
            last = max(before)
            if flag is None or flag < last:
                group = "not_signalled"
            elif flag <= ref:
                group = "signalled"
            elif any(ref < d <= flag for d in days):
                group = "unknown"  # the lapse's own flag may have been replaced
            else:
                group = "not_signalled"
            eligible[(group, window)] += 1
            returned[(group, window)] += any(ref < d <= ref + window for d in days)
    return eligible, returned


def draw(rnd: random.Random) -> User:
    start = TODAY - rnd.randint(1, 95)
    days = {start}
    day = start
    while rnd.random() < 0.85:
        day += rnd.choice((1, 1, 2, 3, 5, 8, 13, 21))
        if day >= TODAY:
            break
        days.add(day)
    flag = None
    if rnd.random() < 0.6:
        flag = min(rnd.choice(sorted(days)) + rnd.randint(0, 12), TODAY - 1)
    return days, flag


def state_of(days: set[int], flag: int | None, rnd: random.Random) -> UserState:
    last = max(days)
    bitmap = sum(1 << (last - d) for d in days)
    marks = [(SIGNAL_KINDS.index("dormant"), 0, 0, (last + 9) * DAY_MS, 0)]  # ignored
    if flag is not None:
        at = flag * DAY_MS + rnd.randrange(DAY_MS)
        marks.append((SIGNAL_KINDS.index("churn_risk"), rnd.randrange(3), 0, at, 0))
    marks.sort()
    first_ms = min(days) * DAY_MS + 3_600_000
    return UserState(first_ms, last * DAY_MS + 7_200_000, last, days=bitmap, marks=marks)


def test_split_from_state_equals_the_definition_on_plain_data() -> None:
    rnd = random.Random(17)
    users = [draw(rnd) for _ in range(5_000)]
    counts = RiskReturns()
    half = len(users) // 2  # two partitions add up
    counts.add([state_of(d, f, rnd) for d, f in users[:half]], Calendar("UTC"), TODAY)
    counts.add([state_of(d, f, rnd) for d, f in users[half:]], Calendar("UTC"), TODAY)
    eligible, returned = oracle(users, TODAY)
    assert counts.eligible == eligible
    assert counts.returned == returned
    for window in (7, 30):  # every branch is exercised, with and without returns
        for group in ("signalled", "not_signalled"):
            assert 0 < returned[(group, window)] < eligible[(group, window)], (group, window)
        # active between the reference day and a flag before today: back within the window
        assert 0 < returned[("unknown", window)] == eligible[("unknown", window)]


def test_boundaries_of_the_lapse_and_the_window() -> None:
    ref = TODAY - 8  # window 7
    rnd = random.Random(1)

    def seen(days: set[int], flag: int | None) -> tuple[str, bool] | None:
        return classify(state_of(days, flag, rnd), flag, ref, 7)

    assert seen({ref}, None) is None  # active on the reference day: not lapsed
    assert seen({ref - 31}, None) is None  # beyond the lookback
    assert seen({ref - 30}, None) == ("not_signalled", False)
    assert seen({ref - 3, ref + 7}, ref - 3) == ("signalled", True)  # flagged on the last day
    assert seen({ref - 3, ref + 8}, ref) == ("signalled", False)  # back after the window
    assert seen({ref - 3}, ref - 4) == ("not_signalled", False)  # flag of an earlier lapse
    assert seen({ref - 3, ref + 2}, ref + 2) == ("unknown", True)
    assert seen({ref - 3, ref + 5}, ref + 2) == ("not_signalled", True)  # flagged late, no return
    assert last_active_by(state_of({ref + 40}, None, rnd), ref) is None


def test_gauges_show_the_counts_by_group_and_window() -> None:
    registry = CollectorRegistry()
    metrics = ModelMetrics(registry)
    get = registry.get_sample_value
    labels = {"group": "unknown", "window": "30"}
    assert get("engagement_model_churn_risk_eligible_users", labels) == 0  # pre-initialised
    counts = RiskReturns()
    counts.eligible[("signalled", 7)] = 40
    counts.returned[("signalled", 7)] = 6
    metrics.show_risk_returns(counts)
    labels = {"group": "signalled", "window": "7"}
    assert get("engagement_model_churn_risk_eligible_users", labels) == 40
    assert get("engagement_model_churn_risk_return_users", labels) == 6


def test_the_demo_report_shows_both_rates() -> None:
    from io import StringIO

    from streams.demo.quality import print_risk_returns

    out = StringIO()
    metrics = {
        'engagement_model_churn_risk_eligible_users{group="signalled",window="7"}': 40.0,
        'engagement_model_churn_risk_return_users{group="signalled",window="7"}': 6.0,
    }
    print_risk_returns(metrics, out)
    lines = out.getvalue().splitlines()
    assert lines[1].split() == ["signalled", "15%", "of", "40", "-", "of", "0"]
    assert lines[2].split() == ["not_signalled", "-", "of", "0", "-", "of", "0"]
