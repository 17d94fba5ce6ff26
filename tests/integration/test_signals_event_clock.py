"""Event clock, on each broker: a scripted population yields exactly the expected signals.

Users stay, fade, go dormant, churn, turn at-risk and come back; the expected signals are
derived here from the definitions (dormant D days after the last event, churned after C,
at-risk when P(alive) crosses the threshold, reactivated on return), with the deterministic
ids, and compared with what arrives on the signal topics: nothing missing, nothing else.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Any

import pytest

from agents.logic.churn import ModelParams, risk_deadline_T
from agents.logic.signals import signal_id
from streams.settings import Settings
from streams.tools.signals import SignalConsumer
from tests.integration.conftest import BrokerHandle
from tests.integration.workers import (
    produce_events,
    running_worker,
    wait_for,
    wait_metric,
    worker_env,
)

pytestmark = pytest.mark.integration
DAY = 86_400_000
HOUR = 3_600_000
T0 = (int(time.time() * 1000) // DAY - 120) * DAY  # midnight UTC, 120 days ago
PARAMS = ModelParams(0.8, 4.0, 0.3, 3.0)
THRESHOLD = 0.5
END_DAY = 100
SCRIPT = {  # user -> active days (one event at 10:00 on each)
    "stayer": list(range(0, 60)),
    "fader": [0, 1],
    "returner": [0, 45],
    "regular": list(range(0, 10)),
    "late-joiner": [80, 81, 82],
}


@dataclass(frozen=True)
class Expected:
    kind: str
    trigger_ms: int
    days_inactive: float


def silence(days: list[int], until_ms: int) -> list[Expected]:
    """Signals for a user silent after its last active day, up to ``until_ms``."""
    last = T0 + days[-1] * DAY + 10 * HOUR
    x, t_x = len(days) - 1, days[-1] - days[0]
    risk = T0 + days[0] * DAY + int(risk_deadline_T(x, t_x, PARAMS, THRESHOLD) * DAY + 0.999999)
    out = []
    if risk < last + 7 * DAY:
        out.append(Expected("churn_risk", risk, round((risk - last) / DAY, 4)))
    out += [Expected("dormant", last + 7 * DAY, 7.0), Expected("churned", last + 30 * DAY, 30.0)]
    return [e for e in out if e.trigger_ms <= until_ms]


def expected_signals(watermark_ms: int) -> dict[str, list[Expected]]:
    expected = {
        user: silence(days, watermark_ms) for user, days in SCRIPT.items() if user != "returner"
    }
    back = T0 + 45 * DAY + 10 * HOUR
    first_lapse = silence([0], back - HOUR)  # what fired before the return was read
    expected["returner"] = [
        *first_lapse,
        Expected("reactivated", T0 + 10 * HOUR, 45.0),
        *silence([0, 45], watermark_ms),
    ]
    return expected


def test_scripted_population_gets_exactly_its_signals(broker: BrokerHandle, unique_name) -> None:
    name = unique_name("lifecycle")
    env = worker_env(
        broker, name, ENGAGEMENT_CLOCK="event", ENGAGEMENT_ALIVE_THRESHOLD=str(THRESHOLD)
    )
    events: list[dict[str, Any]] = [
        {
            "event_id": f"{user}-{day}",
            "user_id": user,
            "event_type": "page_view",
            "timestamp": T0 + day * DAY + 10 * HOUR,
        }
        for user, days in SCRIPT.items()
        for day in days
    ]
    events.append(
        {
            "event_id": "tick",
            "user_id": "clock",
            "event_type": "page_view",
            "timestamp": T0 + END_DAY * DAY,
        }
    )
    events.sort(key=lambda e: e["timestamp"])
    watermark = T0 + END_DAY * DAY - HOUR
    expected = expected_signals(watermark)
    n_expected = sum(len(v) for v in expected.values())
    with running_worker(env) as worker:
        produce_events(broker.bootstrap, env["ENGAGEMENT_INPUT_TOPIC"], events)
        wait_metric([worker], "engagement_events_folded_total", len(events), timeout=90)
        wait_for(
            lambda: (
                worker.metrics().get("engagement_watermark_timestamp_seconds", 0)
                >= watermark / 1000
            ),
            30,
            "the final watermark",
        )
        with contextlib.suppress(AssertionError):  # the comparison below shows which ones
            wait_for(
                lambda: (
                    sum(
                        v
                        for k, v in worker.metrics().items()
                        if k.startswith("engagement_signals_emitted_total")
                    )
                    >= n_expected
                ),
                30,
                f"{n_expected} signals",
            )
    settings = Settings.from_env(env)
    with SignalConsumer(settings, dedupe=False) as consumer:
        received = list(consumer)
    got: dict[str, list[Expected]] = {}
    for signal in sorted(received, key=lambda s: (s.event_time_ms, s.kind)):
        assert signal.signal_id == signal_id(
            signal.user_id, signal.kind, _trigger(signal.to_dict())
        )
        got.setdefault(signal.user_id, []).append(
            Expected(signal.kind, _trigger(signal.to_dict()), signal.reasons["days_inactive"])
        )
        assert signal.clock == "event"
    assert got == {user: sigs for user, sigs in expected.items() if sigs}
    stayer_dormant = next(s for s in received if s.user_id == "stayer" and s.kind == "dormant")
    assert stayer_dormant.reasons["usual_gap_days"] == 1.0
    assert stayer_dormant.reasons["active_days"] == 60
    back = next(s for s in received if s.kind == "reactivated")
    assert back.reasons["days_dormant"] == 45.0
    assert back.stage_before == "churned"


def _trigger(signal: dict[str, Any]) -> int:
    """The trigger of a signal: its deadline, or for a return the end of the lapse."""
    if signal["kind"] == "reactivated":
        return int(signal["event_time_ms"] - signal["reasons"]["days_dormant"] * DAY)
    return int(signal["event_time_ms"])
