"""The signal oracle on hand-worked cases (it is what the engine's property test trusts)."""

from __future__ import annotations

import ast
import json
import random
import sys
from datetime import datetime
from pathlib import Path

import pytest

from tests.oracle import DAY_MS, RawEvent, SignalRules, expected_signals, signal_id

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
HOUR = 3_600_000


def at(day: float) -> int:
    return T0 + round(day * DAY_MS)


def utc(text: str) -> int:
    return int(datetime.fromisoformat(text + "+00:00").timestamp() * 1000)


def events(user: str, times: list[int]) -> list[RawEvent]:
    return [RawEvent(user, f"{user}-{i}", ms) for i, ms in enumerate(times)]


def kinds(result, user: str = "u") -> list[tuple[str, int, int]]:
    return [(s.kind, s.trigger_ms, s.at_ms) for s in result.signals if s.user_id == user]


def test_the_oracle_imports_only_the_standard_library() -> None:
    tree = ast.parse((ROOT / "tests" / "oracle.py").read_text())
    names = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    names |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert {name.split(".")[0] for name in names} <= {*sys.stdlib_module_names, "__future__"}


def test_signal_id_reproduces_the_schema_example() -> None:
    schema = json.loads((ROOT / "schemas" / "signal.schema.json").read_text())
    dormant = next(e for e in schema["examples"] if e["kind"] == "dormant")
    assert signal_id("u-1842", "dormant", dormant["event_time_ms"]) == dormant["signal_id"]


def test_dormant_churned_and_back_with_the_return_triggered_by_the_last_activity() -> None:
    """Days 0, 1, 2, 12.5, 13, 14.2, 25.3 (the batching regression's user): each silence of 7
    days makes the user dormant 7 days after their last event; each return is reactivated."""
    result = expected_signals(
        events("u", [at(d) for d in (0, 1, 2, 12.5, 13, 14.2, 25.3)]), SignalRules(), at(39)
    )
    assert kinds(result) == [
        ("dormant", at(9), at(9)),
        ("reactivated", at(2), at(12.5)),
        ("dormant", at(21.2), at(21.2)),
        ("reactivated", at(14.2), at(25.3)),
        ("dormant", at(32.3), at(32.3)),
    ]


def test_nothing_fires_after_now_and_churned_follows_dormant() -> None:
    times = [at(0.5)]
    assert kinds(expected_signals(events("u", times), SignalRules(), at(7.5) - 1)) == []
    assert kinds(expected_signals(events("u", times), SignalRules(), at(30.5))) == [
        ("dormant", at(7.5), at(7.5)),
        ("churned", at(30.5), at(30.5)),
    ]


def test_churn_risk_at_the_closed_form_crossing_and_not_once_dormant() -> None:
    """Active 10:00 UTC on days 0..5: x = 5, t_x = 5, p* = 0.5, (r, alpha, a, b) =
    (0.8, 4, 0.3, 3). T* = 9 * (1 * 8 / 0.3) ** (1 / 5.8) - 4 = 11.85255203543002... days from
    the start of day 0, before the dormant deadline on day 12 at 10:00; dormant follows, and no
    second churn_risk while dormant."""
    times = [at(d) + 10 * HOUR for d in range(6)]
    result = expected_signals(events("u", times), SignalRules(), at(40))
    risk = T0 + 1_024_060_496  # ceil(11.852552035430025... * 86_400_000) ms after T0
    assert kinds(result) == [
        ("churn_risk", risk, risk),
        ("dormant", at(12) + 10 * HOUR, at(12) + 10 * HOUR),
        ("churned", at(35) + 10 * HOUR, at(35) + 10 * HOUR),
    ]


def test_at_risk_from_the_activity_when_p_alive_is_below_the_threshold_already() -> None:
    """p* = 0.95 is above P(alive) right after the activity, (b + x) / (a + b + x): 0.909 after
    a first active day, 0.930 after a second. So the user is at risk from the event itself.
    More activity the same day changes neither x nor t_x: still at risk, dormant 7 days after
    it. Activity on the next day makes the user live again, and at risk again at once."""
    rules = SignalRules(alive_threshold=0.95)
    first = at(0) + 10 * HOUR
    cases = {
        (): [("churn_risk", first), ("dormant", first + 7 * DAY_MS)],
        (first + 10 * HOUR,): [("churn_risk", first), ("dormant", first + 10 * HOUR + 7 * DAY_MS)],
        (at(1) + 10 * HOUR,): [
            ("churn_risk", first),
            ("churn_risk", at(1) + 10 * HOUR),
            ("dormant", at(8) + 10 * HOUR),
        ],
    }
    for more, expected in cases.items():
        result = expected_signals(events("u", [first, *more]), rules, at(20))
        assert [(kind, trigger) for kind, trigger, _ in kinds(result)] == expected


def test_days_are_local_calendar_days_across_the_spring_dst_change() -> None:
    """Berlin springs forward on Sunday 2026-03-29 (a 23-hour day). Events at 22:30Z on the 28th
    and on the 29th are 24 hours apart but on local days 28 and 30 (23:30 CET, 00:30 CEST), so
    t_x = 2 there and 1 in UTC; x = 1 either way. p* = 0.8:
    T* = (4 + t_x) * (0.25 * 4 / 0.3) ** (1 / 1.8) - 4 days from the first day's local midnight:
    Berlin 7.7122259523108778... from 2026-03-27T23:00Z, UTC 5.7601882935923981... from
    2026-03-28T00:00Z; both before the dormant deadline, 2026-04-05T22:30Z."""
    times = [utc("2026-03-28T22:30:00"), utc("2026-03-29T22:30:00")]
    now = utc("2026-04-10T00:00:00")
    dormant = utc("2026-04-05T22:30:00")
    expected = {
        "Europe/Berlin": utc("2026-04-04T16:05:36.323"),
        "UTC": utc("2026-04-02T18:14:40.269"),
    }
    for timezone, risk in expected.items():
        rules = SignalRules(alive_threshold=0.8, timezone=timezone)
        assert kinds(expected_signals(events("u", times), rules, now)) == [
            ("churn_risk", risk, risk),
            ("dormant", dormant, dormant),
        ]


def test_a_user_back_after_the_state_was_discarded_starts_a_new_life() -> None:
    result = expected_signals(events("u", [at(0), at(500)]), SignalRules(), at(600))
    assert [(k, t) for k, t, _ in kinds(result)] == [
        ("dormant", at(7)),
        ("churned", at(30)),
        ("dormant", at(507)),
        ("churned", at(530)),
    ]


@pytest.mark.parametrize(
    ("gap", "signals"),
    [
        (7 * DAY_MS - 1, []),
        (7 * DAY_MS, ["dormant", "reactivated"]),
        (7 * DAY_MS + HOUR - 1, ["dormant", "reactivated"]),
        (7 * DAY_MS + HOUR, ["dormant", "reactivated"]),
    ],
)
def test_a_return_at_or_after_the_deadline_follows_it_however_close(
    gap: int, signals: list[str]
) -> None:
    """Dormant after D days without activity, a return at exactly D included: however close
    the return comes after the deadline, the deadline fired first."""
    result = expected_signals(events("u", [at(0), at(0) + gap]), SignalRules(), at(10))
    assert [k for k, _, _ in kinds(result)] == signals


def test_nothing_is_decided_after_a_deadline_the_clock_has_not_reached() -> None:
    """A return read before the clock reaches the deadline before it: neither the deadline nor
    the return (nor anything later) is decided yet; once the clock is past it, both are."""
    times = [at(0), at(7) + HOUR // 2, at(7.5)]
    assert kinds(expected_signals(events("u", times), SignalRules(), at(7) - 1)) == []
    assert [k for k, _, _ in kinds(expected_signals(events("u", times), SignalRules(), at(7)))] == [
        "dormant",
        "reactivated",
    ]


def test_duplicates_and_arrival_order_change_nothing() -> None:
    rnd = random.Random(3)
    base = [RawEvent(f"u{i % 3}", f"e{i}", at(rnd.uniform(0, 60))) for i in range(40)]
    shuffled = base + rnd.sample(base, 10)
    rnd.shuffle(shuffled)
    rules = SignalRules(alive_threshold=0.7)
    assert expected_signals(shuffled, rules, at(70)) == expected_signals(base, rules, at(70))
