"""Property: a replay gives exactly the defined signals, however it is read.

Random small populations (gaps around the dormant, churned and discard delays and where the
churn model's deadlines land, duplicates), reordered within the allowed lateness, spread over
partitions, cut into random batches and interleaved at random, are fed to the engine on the
event clock; its signals must be exactly the independent oracle's (``tests/oracle.py``):
same (user, kind, trigger), each once. Users for whom the definitions leave the answer to the
arrival order (a deadline within the lateness before their next event) are left out.
"""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass
from typing import Any

from hypothesis import event, given, settings
from hypothesis import strategies as st

from agents.logic.churn import ModelParams
from agents.logic.days import DAY_MS
from agents.logic.engine import Engine, EngineConfig
from schemas.records import Event
from tests.oracle import ExpectedSignals, RawEvent, SignalRules, expected_signals, signal_id
from tests.unit.conftest import engine_config

HOUR = 3_600_000
START = 1_774_137_600_000  # 2026-03-22T00:00:00Z: Berlin springs forward a week later
DELAYS = ((7.0, 30.0, 40.0), (2.0, 5.0, 9.0), (1.5, 4.0, 6.5))  # dormant, churned, discard
MODELS = ((0.8, 4.0, 0.3, 3.0), (0.5, 2.0, 0.8, 2.5))  # r, alpha, a, b
TIMER_MS = 100  # the deadline index's resolution (agents.logic.timers)
THRESHOLDS = (0.3, 0.5, 0.5, 0.7, 0.8, 0.8, 0.95)  # 0.95: at risk from the activity on


@dataclass(frozen=True)
class Scenario:
    rules: SignalRules
    events: list[RawEvent]  # every event, duplicates included, in time order
    arrival: list[RawEvent]  # the order they are read in (each partition keeps it)
    partition_of: dict[str, int]
    steps: list[tuple[int, int]]  # (partition, batch size) in the order the engine reads them
    now_ms: int


@functools.cache
def config_for(rules: SignalRules) -> EngineConfig:
    return engine_config(
        dormant_days=rules.dormant_days,
        churned_days=rules.churned_days,
        threshold=rules.alive_threshold,
        timezone=rules.timezone,
        discard_days=rules.discard_days,
        lateness_ms=rules.lateness_ms,
        params=ModelParams(rules.r, rules.alpha, rules.a, rules.b),
    )


def gaps(rules: SignalRules) -> st.SearchStrategy[int]:
    """Time to a user's next event: within the session, the next day, a few days (where the
    churn model's deadlines fall), or about the dormant, churned or discard delay."""
    near = [
        st.integers(round(days * DAY_MS) - 12 * HOUR, round(days * DAY_MS) + 12 * HOUR)
        for days in (rules.dormant_days, rules.churned_days, rules.discard_days)
    ]
    return st.one_of(
        st.integers(0, 6 * HOUR),
        st.integers(18 * HOUR, 30 * HOUR),
        st.integers(2 * DAY_MS, 6 * DAY_MS),
        *near,
    )


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    dormant, churned, discard = draw(st.sampled_from(DELAYS))
    r, alpha, a, b = draw(st.sampled_from(MODELS))
    rules = SignalRules(
        dormant_days=dormant,
        churned_days=churned,
        discard_days=discard,
        alive_threshold=draw(st.sampled_from(THRESHOLDS)),
        lateness_ms=draw(st.sampled_from((HOUR, HOUR, 3 * HOUR))),
        timezone=draw(st.sampled_from(("UTC", "Europe/Berlin"))),
        r=r,
        alpha=alpha,
        a=a,
        b=b,
    )
    events: list[RawEvent] = []
    partitions = draw(st.integers(1, 3))
    partition_of: dict[str, int] = {}
    for u in range(draw(st.integers(1, 4))):
        user = f"u{u}"
        partition_of[user] = draw(st.integers(0, partitions - 1))
        ms = START + draw(st.integers(0, 3 * DAY_MS))
        for i in range(draw(st.integers(1, 8))):
            ms += draw(gaps(rules)) if i else 0
            events.append(RawEvent(user, f"{user}-{i}", ms))
            if draw(st.integers(0, 9)) == 0:
                events.append(RawEvent(user, f"{user}-{i}", ms))  # a duplicate
    events.sort(key=lambda e: e.timestamp_ms)
    # each event is read at most the lateness after its time: none is late
    delays = draw(st.lists(st.integers(0, rules.lateness_ms - 1), min_size=len(events)))
    keyed = sorted(zip(events, delays, strict=False), key=lambda p: p[0].timestamp_ms + p[1])
    arrival = [e for e, _ in keyed]
    steps = cut_and_interleave(draw, arrival, partition_of)
    newest = max(e.timestamp_ms for e in events)
    now = newest - rules.lateness_ms + draw(st.integers(0, 60 * DAY_MS))
    now = -(-now // TIMER_MS) * TIMER_MS  # the timer index fires a deadline on its slot's end
    return Scenario(rules, events, arrival, partition_of, steps, now)


def cut_and_interleave(
    draw: st.DrawFn, arrival: list[RawEvent], partition_of: dict[str, int]
) -> list[tuple[int, int]]:
    """Batches of each partition's events, read in a random interleaving of the partitions."""
    sizes: dict[int, list[int]] = {}
    for number in sorted(set(partition_of.values())):
        left = sum(1 for e in arrival if partition_of[e.user_id] == number)
        while left:
            size = draw(st.integers(1, left))
            sizes.setdefault(number, []).append(size)
            left -= size
    steps: list[tuple[int, int]] = []
    while sizes:
        number = draw(st.sampled_from(sorted(sizes)))
        steps.append((number, sizes[number].pop(0)))
        if not sizes[number]:
            del sizes[number]
    return steps


def run_engine(scenario: Scenario) -> list[dict[str, Any]]:
    engine = Engine(config_for(scenario.rules))
    queues: dict[int, list[Event]] = {}
    for e in scenario.arrival:
        event = Event(e.event_id, e.user_id, "page_view", e.timestamp_ms, e.channel)
        queues.setdefault(scenario.partition_of[e.user_id], []).append(event)
    for number in queues:
        engine.assign(number, {})
    signals: list[dict[str, Any]] = []
    for number, size in scenario.steps:
        batch, queues[number] = queues[number][:size], queues[number][size:]
        signals += [s for _, _, s in engine.process(number, batch, 0).signals]
    for number in sorted(engine.partitions):  # the replay's end: the clock reaches now
        signals += [s for _, _, s in engine.process(number, [], 0, scenario.now_ms).signals]
    return signals


def assert_same_signals(
    got: list[dict[str, Any]], expected: ExpectedSignals, lateness_ms: int
) -> None:
    ids = Counter(s["signal_id"] for s in got)
    assert all(n == 1 for n in ids.values()), "a signal emitted twice"
    engine = [s for s in got if s["user_id"] not in expected.undecided]
    oracle = [s for s in expected.signals if s.user_id not in expected.undecided]
    explain = (sorted((s["user_id"], s["kind"], s["event_time_ms"]) for s in engine), oracle)
    # churn_risk: trigger = event time, to 1 ms (T* is computed two ways in floating point)
    risks = sorted((s["user_id"], s["event_time_ms"]) for s in engine if s["kind"] == "churn_risk")
    want_risks = sorted((s.user_id, s.trigger_ms) for s in oracle if s.kind == "churn_risk")
    assert len(risks) == len(want_risks), explain
    for (user, ms), (want_user, want_ms) in zip(risks, want_risks, strict=True):
        assert user == want_user and abs(ms - want_ms) <= 1, explain
    # the other kinds: exactly the oracle's ids, i.e. the same (user, kind, trigger)
    by_id = {s["signal_id"]: s for s in engine if s["kind"] != "churn_risk"}
    want = {s.signal_id: s for s in oracle if s.kind != "churn_risk"}
    assert by_id.keys() == want.keys(), explain
    for sid, signal in want.items():
        at_ms = by_id[sid]["event_time_ms"]
        if signal.kind == "reactivated":  # the return read first: within the lateness
            assert signal.at_ms <= at_ms < signal.at_ms + lateness_ms, explain
        else:
            assert at_ms == signal.at_ms, explain
    for s in engine:  # a deadline's id is derived from its own instant
        if s["kind"] != "reactivated":
            assert s["signal_id"] == signal_id(s["user_id"], s["kind"], s["event_time_ms"])


@settings(max_examples=2000, deadline=None)
@given(scenarios())
def test_the_engine_gives_exactly_the_oracles_signals(scenario: Scenario) -> None:
    expected = expected_signals(scenario.events, scenario.rules, scenario.now_ms)
    got = run_engine(scenario)
    users = set(scenario.partition_of)
    event(f"undecided users: {len(expected.undecided)} of {len(users)}")
    for kind in sorted({s.kind for s in expected.signals}):
        event(f"expects {kind}")
    assert_same_signals(got, expected, scenario.rules.lateness_ms)
