"""The fault verdict's allowed classes (tests/faults/verdict.py), each against a path the engine
really takes: a class must explain what the engine does, and nothing wider."""

from __future__ import annotations

import dataclasses

from agents.logic.days import DAY_MS
from agents.logic.engine import Engine
from schemas.records import Signal
from tests.faults.harness import Late
from tests.faults.verdict import Staleness, event_clock_now, judge
from tests.oracle import RawEvent, SignalRules
from tests.unit.conftest import T0, engine_config, make_event

HOUR = 3_600_000
RULES = SignalRules(alive_threshold=0.5, lateness_ms=HOUR)


def _run(batches: list[tuple[int, list[tuple[str, int]]]]) -> list[Signal]:
    """Feed ``(header watermark, [(user, ms)])`` batches to one partition of an event-clock
    engine with the default signal max age (2 days); the signals it delivers."""
    config = dataclasses.replace(engine_config(threshold=0.5), signal_max_age_ms=2 * DAY_MS)
    engine = Engine(config)
    engine.assign(0, {})
    signals: list[Signal] = []
    for wall, (watermark, events) in enumerate(batches, start=1):
        out = engine.process(
            0, [make_event(u, ms) for u, ms in events], wall, watermark_ms=watermark, source="i"
        )
        signals += [Signal.from_dict(signal) for _, _, signal in out.signals]
    return signals


def test_a_return_after_a_suppressed_deadline_that_a_late_event_would_have_prevented() -> None:
    """Seen in CI (input abuse, event clock): the user's dormant deadline fired while an event
    before it waited; it fired older than the max age, so it was suppressed: neither delivered
    nor expected, so not among the differences. The return that ended its silence was fresh
    and delivered, and is extra. The late event that lands before the deadline explains it."""
    a = T0 + DAY_MS  # the user's only event, then 7 days of silence: dormant at a + 7 d
    b = a + 7 * DAY_MS + 34 * 60_000  # returns 34 minutes after that
    c = b + 8 * DAY_MS  # the next return: 8 days after b, ...
    between = b + 6 * DAY_MS  # ... but this event lies between, and is read last
    other = b + 10 * DAY_MS + HOUR  # another user's event moves the clock to b + 10 days
    signals = _run(
        [
            (a - HOUR, [("u", a)]),
            (other - HOUR, [("v", other)]),  # dormant(a + 7 d) fires, fresh: delivered
            (other - HOUR, [("u", b)]),  # its return is 10 days old: suppressed
            (other - HOUR, [("u", c)]),  # dormant(b + 7 d) suppressed, the return delivered
            (other - HOUR, [("u", between)]),
        ]
    )
    kinds = sorted((s.user_id, s.kind, s.event_time_ms) for s in signals)
    assert kinds == [("u", "dormant", a + 7 * DAY_MS), ("u", "reactivated", c)]
    events = [RawEvent("u", f"u-{ms}", ms) for ms in (a, b, c, between)] + [
        RawEvent("v", "v", other)
    ]
    late = [Late("u", b, other), Late("u", c, other), Late("u", between, other)]
    now = event_clock_now(other, RULES)
    staleness = Staleness(2 * DAY_MS, "event", 0)
    verdict = judge(signals, events, RULES, now, late=late, staleness=staleness)
    assert verdict.ok, (verdict.missing, verdict.extra)
    assert verdict.classified_extra == {"late": 1}  # reactivated(trigger b)
    assert verdict.classified_missing == {"stale": 1}  # reactivated(trigger a)

    # without the event that lands before the deadline, nothing explains the return
    verdict = judge(signals, events, RULES, now, late=late[:2], staleness=staleness)
    assert verdict.extra == [("u", "reactivated", b)]
