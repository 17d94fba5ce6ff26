"""The simulator's onboarding funnel: per-channel drop-off as configured, checked with the
independent funnel oracle, and nothing else in the population changed by it."""

from __future__ import annotations

from datetime import date
from itertools import pairwise

from streams.tools.onboarding import GO_ON, ONBOARDING_STEPS
from streams.tools.population import SimulationConfig, simulate
from tests.funnel_oracle import FunnelSpec, Hit, by_user, progress

DAY_MS = 86_400_000
SPEC = FunnelSpec("activation", ONBOARDING_STEPS, 7 * DAY_MS)


def config(onboarding: bool) -> SimulationConfig:
    return SimulationConfig(users=4_000, days=20, start=date(2026, 3, 1), onboarding=onboarding)


def test_onboarding_only_adds_its_own_events() -> None:
    plain = list(simulate(config(False)))
    with_onboarding = list(simulate(config(True)))
    added = [e for e in with_onboarding if e["event_type"] in ONBOARDING_STEPS]
    assert [e for e in with_onboarding if e["event_type"] not in ONBOARDING_STEPS] == plain
    assert len({e["user_id"] for e in added if e["event_type"] == "signup"}) == 4_000
    stamps = [e["timestamp"] for e in with_onboarding]
    assert all(a <= b for a, b in pairwise(stamps))  # still in event-time order


def test_each_channel_drops_off_as_configured_and_step_two_is_the_weakest() -> None:
    events = [
        Hit(e["user_id"], e["event_id"], e["event_type"], e["timestamp"])
        for e in simulate(config(True))
    ]
    channel_of = {e["user_id"]: e["channel"] for e in simulate(config(True))}
    reached: dict[str, list[int]] = {ch: [0, 0, 0] for ch in GO_ON}
    for user, mine in by_user(events).items():
        for k in range(len(progress(mine, SPEC))):
            reached[channel_of[user]][k] += 1
    for channel, (first, second) in GO_ON.items():
        counts = reached[channel]
        assert abs(counts[1] / counts[0] - first) < 0.06, (channel, counts)
        assert abs(counts[2] / counts[1] - second) < 0.08, (channel, counts)
    total = [sum(c[k] for c in reached.values()) for k in range(3)]
    assert total[2] / total[1] < total[1] / total[0]  # the weakest step is step 2
    step_two = {ch: c[2] / c[1] for ch, c in reached.items()}
    assert min(step_two, key=step_two.__getitem__) == "paid_social"
