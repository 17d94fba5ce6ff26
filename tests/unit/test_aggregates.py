"""The aggregates, driven through the engine, against the independent oracle."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from agents.logic.engine import Engine
from schemas.records import Event
from tests.oracle import DAY_MS, Oracle, RawEvent
from tests.oracle import population as oracle_population
from tests.unit.conftest import CHANNELS, T0, engine_config, make_event

HOUR = 3_600_000


def population(seed: int) -> list[RawEvent]:
    return oracle_population(seed, 120, 50, T0, CHANNELS)


def feed(events: list[RawEvent], rnd: random.Random, partitions: int = 3) -> list[Engine]:
    """Time-ordered with 1-hour jitter, 5 % duplicated, some far-late events, split over
    partitions by user and two engines (as two workers would)."""
    stream = sorted(events, key=lambda e: e.timestamp_ms + rnd.randrange(HOUR))
    stream += rnd.sample(stream, len(stream) // 20)
    late = rnd.sample(range(len(stream)), len(stream) // 50)
    for i in late:  # move some events 2-20 days later in the stream (late arrivals)
        stream.append(stream[i])
    stream = [e for j, e in enumerate(stream) if j not in set(late)]
    engines = [Engine(engine_config()), Engine(engine_config())]
    owner = {p: engines[p % 2] for p in range(partitions)}
    for p, eng in owner.items():
        eng.assign(p, {})
    for i in range(0, len(stream), 37):
        chunk = stream[i : i + 37]
        by_part: dict[int, list[Event]] = {}
        for e in chunk:
            by_part.setdefault(int(e.user_id[1:]) % partitions, []).append(
                make_event(e.user_id, e.timestamp_ms, e.event_id, channel=e.channel)
            )
        for p, evs in by_part.items():
            owner[p].process(p, evs, 0)
            owner[p].mark_durable(owner[p].take_changes())  # as the runtime does
    return engines


@settings(max_examples=8, deadline=None)
@given(st.integers(0, 10_000))
def test_gauges_equal_the_oracle(seed: int) -> None:
    rnd = random.Random(seed)
    events = population(seed)
    engines = feed(events, rnd)
    oracle = Oracle.from_events(events, CHANNELS)
    now = max(eng.now_ms(0) for eng in engines)
    for eng in engines:  # both workers on one clock, as Prometheus would sum them
        for part in eng.partitions.values():
            part.meta.watermark_ms = now
    snaps = [eng.snapshot(0) for eng in engines]
    total, today = snaps[0]
    total += snaps[1][0]
    assert total.active["1d"] == oracle.active(today, 1)
    assert total.active["7d"] == oracle.active(today, 7)
    assert total.active["30d"] == oracle.active(today, 30)
    assert dict(total.lifecycle) == oracle.lifecycle(today)
    names = ("other", *CHANNELS)
    for n in (1, 7, 30):
        for i, ch in enumerate(names):
            for period, day in (("today", today), ("last_complete", today - 1)):
                size, on, after = oracle.retention(day - n, n, ch)
                assert total.cohort[(n, i, period)] == size, (n, ch, period)
                assert total.retained[(n, i, period)] == on, (n, ch, period)
                assert total.retained_after[(n, i, period)] == after, (n, ch, period)


def test_rebuild_from_states_equals_incremental_counters() -> None:
    rnd = random.Random(7)
    events = population(7)
    engines = feed(events, rnd)
    for eng in engines:
        for number, part in list(eng.partitions.items()):
            fresh = Engine(eng.config)
            rebuilt = fresh.assign(number, part.store)
            for name in ("active", "consecutive", "cohort", "last_two", "reach", "stages"):
                live = +getattr(part.aggregates, name)
                again = +getattr(rebuilt.aggregates, name)
                floor = part.meta.today - 35
                live = {k: v for k, v in live.items() if _day(k) >= floor}
                again = {k: v for k, v in again.items() if _day(k) >= floor}
                assert live == again, name


def _day(key) -> int:
    if isinstance(key, int):
        return key
    return key[0] if key[0] > 10 else 10**9  # stages keys are (stage, channel): always kept


def test_winback_counts_lapsed_at_day_start_and_reactivations_that_day() -> None:
    eng = Engine(engine_config())
    eng.assign(0, {})
    day = 86_400_000
    eng.process(
        0,
        [
            make_event("a", T0, channel="organic"),
            make_event("b", T0, channel="organic"),
            make_event("c", T0, channel="email"),
        ],
        0,
        T0,
    )
    eng.process(0, [make_event("tick", T0 + 10 * day + 5 * HOUR)], 0, T0 + 10 * day + 4 * HOUR)
    snap, today = eng.snapshot(0)
    assert today == (T0 + 10 * day) // day
    names = ("other", *CHANNELS)
    lapsed = {names[i]: n for i, n in snap.winback_lapsed.items() if n}
    assert lapsed == {"organic": 2, "email": 1}
    out = eng.process(
        0, [make_event("a", T0 + 10 * day + 6 * HOUR, "a-back")], 0, T0 + 10 * day + 5 * HOUR
    )
    assert [s["kind"] for _, _, s in out.signals] == ["reactivated"]
    snap, _ = eng.snapshot(0)
    assert {names[i]: n for i, n in snap.winback_reactivated.items() if n} == {"organic": 1}
    assert snap.winback_lapsed[names.index("organic")] == 2  # the denominator is the day start's


@settings(max_examples=12, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 24 * HOUR - 1))
def test_gauges_equal_the_oracle_whatever_the_time_of_day_the_input_ends(
    seed: int, end_of_day_ms: int
) -> None:
    """The input cut at any moment of its last day, then a clock event on every partition at
    that moment, as the fault scenarios publish it (their input ends a minute before they
    start, so what they check depends on the time of day): the watermark stays an hour
    behind. (The case that made a scenario fail at 17:46 UTC, a deferred return, is rare in
    this small population: ``test_a_deferred_return_counts_in_the_gauges_at_once`` has it.)"""
    rnd = random.Random(seed)
    end_ms = T0 + 49 * DAY_MS + end_of_day_ms
    events = [e for e in population(seed) if e.timestamp_ms < end_ms]
    stream = sorted(events, key=lambda e: e.timestamp_ms + rnd.randrange(HOUR))
    engine = Engine(engine_config())
    for p in range(3):
        engine.assign(p, {})
    for i in range(0, len(stream), 37):
        by_part: dict[int, list[Event]] = {}
        for e in stream[i : i + 37]:
            by_part.setdefault(int(e.user_id[1:]) % 3, []).append(
                make_event(e.user_id, e.timestamp_ms, e.event_id, channel=e.channel)
            )
        for p, evs in by_part.items():
            engine.process(p, evs, 0)
    clocks = [make_event(f"c{p}", end_ms, f"clock-{p}") for p in range(3)]
    for p, clock in enumerate(clocks):
        engine.process(p, [clock], 0)
    snap, today = engine.snapshot(0)
    assert today == (end_ms - HOUR) // DAY_MS
    clock_users = [RawEvent(c.user_id, c.event_id, c.timestamp_ms) for c in clocks]
    oracle = Oracle.from_events(events + clock_users, CHANNELS)
    assert {w: snap.active[w] for w in ("1d", "7d", "30d")} == {
        f"{n}d": oracle.active(today, n) for n in (1, 7, 30)
    }
    assert dict(snap.lifecycle) == oracle.lifecycle(today)
