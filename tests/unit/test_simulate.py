"""The population simulator: reproducible, time-ordered, shaped as configured, and fast."""

from __future__ import annotations

import io
import time
from collections import Counter
from datetime import date

import orjson
import pytest

from agents.logic.partitioning import partition_for
from streams.tools.simulate import (
    Channel,
    SimulationConfig,
    plan_users,
    simulate,
    write_jsonl,
)

START = date(2024, 1, 1)  # a Monday
SMALL = SimulationConfig(users=400, days=30, start=START, seed=11)


def test_same_seed_same_events_and_another_seed_differs() -> None:
    first = list(simulate(SMALL))
    assert first == list(simulate(SMALL))
    other = list(simulate(SimulationConfig(users=400, days=30, start=START, seed=12)))
    assert other != first


def test_events_are_canonical_and_in_event_time_order() -> None:
    events = list(simulate(SMALL))
    stamps = [e["timestamp"] for e in events]
    assert stamps == sorted(stamps)
    assert SMALL.start_ms <= stamps[0] and stamps[-1] < SMALL.end_ms
    assert len({e["event_id"] for e in events}) == len(events)
    for event in events[:200]:
        assert {"event_id", "user_id", "event_type", "timestamp", "channel"} <= event.keys()
    by_user_day = Counter((e["user_id"], e["timestamp"] // 86_400_000) for e in events)
    starts = Counter(
        (e["user_id"], e["timestamp"] // 86_400_000)
        for e in events
        if e["event_type"] == "session_start"
    )
    assert starts.keys() == by_user_day.keys()  # every active day opens with a session_start


def test_channel_mix_follows_the_shares() -> None:
    config = SimulationConfig(
        users=6_000,
        days=10,
        start=START,
        channels=(
            Channel("organic", 0.6, 2, 4, 1, 10),
            Channel("paid_social", 0.3, 1, 5, 2, 3),
            Channel("email", 0.1, 1, 4, 1, 7),
        ),
    )
    mix = Counter(config.channels[p.channel].name for p in plan_users(config))
    assert mix["organic"] / 6_000 == pytest.approx(0.6, abs=0.03)
    assert mix["paid_social"] / 6_000 == pytest.approx(0.3, abs=0.03)
    assert mix["email"] / 6_000 == pytest.approx(0.1, abs=0.02)


def test_channels_retain_in_the_configured_order() -> None:
    config = SimulationConfig(users=8_000, days=40, start=START, seed=5, arrival_days=20)
    size: Counter[int] = Counter()
    kept: Counter[int] = Counter()
    for plan in plan_users(config):
        size[plan.channel] += 1
        kept[plan.channel] += plan.active_days[0] + 7 in plan.active_days
    day7 = [kept[i] / size[i] for i in range(len(config.channels))]
    assert day7[0] > day7[3] > day7[4]  # organic > paid_search > paid_social


def test_weekends_are_quieter_when_configured() -> None:
    config = SimulationConfig(
        users=3_000, days=28, start=START, seed=3, weekend_factor=0.4, winback_share=0.0
    )
    dau: Counter[int] = Counter()
    for plan in plan_users(config):
        dau.update(d for d in plan.active_days if d >= 14)  # arrivals have levelled off a bit
    weekend = [dau[d] for d in range(14, 28) if config.is_weekend(d)]
    weekday = [dau[d] for d in range(14, 28) if not config.is_weekend(d)]
    assert config.is_weekend(5) and config.is_weekend(6) and not config.is_weekend(7)
    assert sum(weekend) / len(weekend) < 0.8 * sum(weekday) / len(weekday)


def test_a_share_of_dropouts_come_back_after_a_dormant_spell() -> None:
    config = SimulationConfig(
        users=10_000, days=90, start=START, seed=9, winback_share=0.3, winback_after=(12, 20)
    )
    plans = list(plan_users(config))
    dropped = [p for p in plans if p.dropped_day is not None]
    planned = [p for p in dropped if p.return_day is not None]
    assert len(planned) / len(dropped) == pytest.approx(0.3, abs=0.02)
    back = [p for p in planned if p.return_day is not None and p.return_day < config.days]
    assert back
    for plan in back:
        assert plan.return_day in plan.active_days
        gap = plan.return_day - (plan.dropped_day or 0)
        assert 12 <= gap <= 20
        before = [d for d in plan.active_days if d < plan.return_day]
        assert before[-1] == plan.dropped_day  # silent during the spell


def test_closing_events_reach_every_partition_at_the_end() -> None:
    config = SimulationConfig(users=300, days=20, start=START, seed=2, close_partitions=4)
    events = list(simulate(config))
    closing = [e for e in events if e["event_id"].endswith(tuple(f"-close-{p}" for p in range(4)))]
    assert len(closing) == 4
    assert {partition_for(e["user_id"].encode(), 4) for e in closing} == {0, 1, 2, 3}
    assert all(e["timestamp"] == config.end_ms - 1 for e in closing)
    users = {e["user_id"] for e in events[: -len(closing)]}
    assert {e["user_id"] for e in closing} <= users  # no extra users


def test_default_start_puts_every_event_in_the_past() -> None:
    config = SimulationConfig(users=50, days=5, close_partitions=4)
    assert config.end_ms <= time.time() * 1000
    assert max(e["timestamp"] for e in simulate(config)) < config.end_ms


def test_json_lines_round_trip() -> None:
    out = io.BytesIO()
    count = write_jsonl(simulate(SMALL), out, batch=100)
    lines = out.getvalue().splitlines()
    assert count == len(lines) > 0
    assert [orjson.loads(line) for line in lines] == list(simulate(SMALL))


def test_speed_is_measured() -> None:
    """About 100k events, generated and serialized; the rate is printed (asserted loosely)."""
    config = SimulationConfig(users=10_000, days=60, start=START, seed=1)
    began = time.perf_counter()
    count = sum(1 for event in simulate(config) if orjson.dumps(event))
    took = time.perf_counter() - began
    print(f"\nsimulate: {count} events in {took:.2f}s = {count / took:,.0f} events/s")
    assert count > 50_000
    assert took < 30  # a generous bound for a shared 2-core machine


def test_the_campaign_acts_on_treated_dormant_users_only() -> None:
    from dataclasses import replace

    from agents.logic.holdout import HOLDOUT, TREATMENT, arm_of
    from streams.tools.population import SimulationConfig as Config
    from streams.tools.population import plan_users

    base = Config(users=800, days=60, start=date(2026, 1, 5), seed=4, holdout_share=0.3)
    plain = {p.user_id: p.active_days for p in plan_users(base)}
    acted = list(plan_users(replace(base, winback_effect=1.0)))
    spells = [s for p in acted for s in p.spells]
    assert {s.arm for s in spells} == {TREATMENT, HOLDOUT} and all(s.responds for s in spells)
    for plan in acted:
        added = set(plan.active_days) - set(plain[plan.user_id])
        assert set(plain[plan.user_id]) <= set(plan.active_days)
        arm = arm_of(plan.user_id, "dormant", base.holdout_salt, base.holdout_share)
        if arm == HOLDOUT:
            assert not added  # holdout users are never acted on
        assert added <= {s.campaign_day for s in plan.spells}
    treated_back = sum(
        s.arm == TREATMENT and s.campaign_day in p.active_days for p in acted for s in p.spells
    )
    assert treated_back > 100
