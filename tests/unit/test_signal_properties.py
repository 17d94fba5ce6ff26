"""Property: a replay gives exactly the defined signals, however it is read.

Random small populations (gaps around the dormant, churned and discard delays and where the
churn model's deadlines land, duplicates), reordered within the allowed lateness, spread over
partitions, cut into random batches and interleaved at random, are fed to the engine on the
event clock; its signals must be exactly the independent oracle's (``tests/oracle.py``):
same (user, kind, trigger), each once, for every user, including those whose next event comes
within the lateness after a deadline (the engine defers such an event until the clock passes
the deadline, :mod:`agents.logic.walk`).

The one class left out is the one the definitions leave open: users with an event *read late*,
i.e. read when its partition's event clock (newest event time read before that batch, minus
the lateness) had already passed it. The arrival order reorders within the lateness, so no
event is read late, except in the scenarios that explicitly delay a few events by more than
the lateness (``late_reads``); their users are left out and the engine must have counted each
of those events as late.

Also left out, as a known gap of the engine rather than of the definitions: users with two
events read out of time order (within the lateness) and a deadline between them
(``reordered_around_a_deadline``; see the xfail test in ``test_deferred_deadlines.py``).
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
from agents.logic.engine import Engine
from agents.logic.engine_types import EngineConfig
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
    late_reads: bool  # whether some events were delayed beyond the lateness
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
    # each event is read at most the lateness after its time: none is late; unless a few events
    # are delayed by up to two days on purpose
    late_reads = draw(st.integers(0, 9)) == 0
    within = st.integers(0, rules.lateness_ms - 1)
    beyond = st.integers(rules.lateness_ms, 2 * DAY_MS)
    delay = st.one_of(within, within, within, beyond) if late_reads else within
    delays = draw(st.lists(delay, min_size=len(events), max_size=len(events)))
    keyed = sorted(zip(events, delays, strict=False), key=lambda p: p[0].timestamp_ms + p[1])
    arrival = [e for e, _ in keyed]
    steps = cut_and_interleave(draw, arrival, partition_of)
    newest = max(e.timestamp_ms for e in events)
    now = newest - rules.lateness_ms + draw(st.integers(0, 60 * DAY_MS))
    now = -(-now // TIMER_MS) * TIMER_MS  # the timer index fires a deadline on its slot's end
    return Scenario(rules, events, arrival, late_reads, partition_of, steps, now)


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


def read_late(scenario: Scenario) -> list[RawEvent]:
    """The events read late: older than their partition's clock before their batch."""
    queues: dict[int, list[RawEvent]] = {}
    for e in scenario.arrival:
        queues.setdefault(scenario.partition_of[e.user_id], []).append(e)
    clock: dict[int, int] = {}
    late = []
    for number, size in scenario.steps:
        batch, queues[number] = queues[number][:size], queues[number][size:]
        late += [e for e in batch if e.timestamp_ms < clock.get(number, 0)]
        newest = max(e.timestamp_ms for e in batch) - scenario.rules.lateness_ms
        clock[number] = max(clock.get(number, 0), newest)
    return late


def run_engine(scenario: Scenario) -> tuple[list[dict[str, Any]], int]:
    """The signals, and how many events the engine counted as late."""
    engine = Engine(config_for(scenario.rules))
    queues: dict[int, list[Event]] = {}
    for e in scenario.arrival:
        event = Event(e.event_id, e.user_id, "page_view", e.timestamp_ms, e.channel)
        queues.setdefault(scenario.partition_of[e.user_id], []).append(event)
    for number in queues:
        engine.assign(number, {})
    signals: list[dict[str, Any]] = []
    late = 0
    for number, size in scenario.steps:
        batch, queues[number] = queues[number][:size], queues[number][size:]
        out = engine.process(number, batch, 0)
        signals += [s for _, _, s in out.signals]
        late += out.late
    for number in sorted(engine.partitions):  # the replay's end: the clock reaches now
        signals += [s for _, _, s in engine.process(number, [], 0, scenario.now_ms).signals]
    return signals, late


def assert_same_signals(
    got: list[dict[str, Any]], expected: ExpectedSignals, lateness_ms: int, skip: set[str]
) -> None:
    ids = Counter(s["signal_id"] for s in got)
    assert all(n == 1 for n in ids.values()), "a signal emitted twice"
    engine = [s for s in got if s["user_id"] not in skip]
    oracle = [s for s in expected.signals if s.user_id not in skip]
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


def reordered_around_a_deadline(expected: ExpectedSignals, scenario: Scenario) -> set[str]:
    """Users with events a < b read in the order b, a, and an oracle deadline d, a <= d <= b:
    the engine folds a into the state after b, and a deadline a's own state had before b is
    lost (a known gap, not a question the definitions leave open)."""
    read_at: dict[tuple[str, int], int] = {}
    for i, e in enumerate(scenario.arrival):
        read_at.setdefault((e.user_id, e.timestamp_ms), i)
    users = set()
    for s in expected.signals:
        if s.kind == "reactivated":
            continue
        mine = [(ms, i) for (u, ms), i in read_at.items() if u == s.user_id]
        if any(a <= s.at_ms <= b and ia > ib for a, ia in mine for b, ib in mine):
            users.add(s.user_id)
    return users


def deadline_just_before_an_event(expected: ExpectedSignals, scenario: Scenario) -> bool:
    """Whether a deadline fired within the lateness before one of its user's events (the
    users once left out as undecided)."""
    times: dict[str, list[int]] = {}
    for e in scenario.events:
        times.setdefault(e.user_id, []).append(e.timestamp_ms)
    lateness = scenario.rules.lateness_ms
    return any(
        s.kind != "reactivated" and any(t - lateness < s.at_ms <= t for t in times[s.user_id])
        for s in expected.signals
    )


@settings(max_examples=2000, deadline=None)
@given(scenarios())
def test_the_engine_gives_exactly_the_oracles_signals(scenario: Scenario) -> None:
    expected = expected_signals(scenario.events, scenario.rules, scenario.now_ms)
    got, counted_late = run_engine(scenario)
    late = read_late(scenario)
    assert counted_late == len(late)  # the class left out is the events the engine calls late
    assert scenario.late_reads or not late  # ... and only scenarios that delay events have any
    skip = {e.user_id for e in late}
    fragile = reordered_around_a_deadline(expected, scenario) - skip
    event(f"users reordered around a deadline: {len(fragile)}")
    skip |= fragile
    event(f"users with a late read: {len(skip)} of {len(scenario.partition_of)}")
    if deadline_just_before_an_event(expected, scenario):
        event("a deadline within the lateness before an event")
    for kind in sorted({s.kind for s in expected.signals}):
        event(f"expects {kind}")
    assert_same_signals(got, expected, scenario.rules.lateness_ms, skip)
