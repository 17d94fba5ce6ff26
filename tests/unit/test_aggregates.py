"""The aggregates, driven through the engine, against the independent oracle."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.logic.aggregates import Aggregates, flat_counts
from agents.logic.engine import Engine
from agents.logic.partitioning import partition_for
from schemas.records import Event
from tests.faults.conftest import CHANNELS as FAULT_CHANNELS
from tests.faults.conftest import DAYS as FAULT_DAYS
from tests.faults.conftest import PARTITIONS as FAULT_PARTITIONS
from tests.faults.conftest import event_input
from tests.oracle import DAY_MS, Oracle, RawEvent, disorder
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
    fold_in_chunks(owner, stream, 37, lambda e: int(e.user_id[1:]) % partitions, durable=True)
    return engines


def fold_in_chunks(
    owner: Mapping[int, Engine],
    stream: Sequence[RawEvent],
    size: int,
    partition_of: Callable[[RawEvent], int],
    durable: bool = False,
) -> None:
    """``stream`` ``size`` events at a time, each chunk split by partition and folded by the
    partition's engine (with ``durable``, its changes made durable at once, as the runtime
    does)."""
    for i in range(0, len(stream), size):
        by_part: dict[int, list[Event]] = {}
        for e in stream[i : i + size]:
            by_part.setdefault(partition_of(e), []).append(
                make_event(e.user_id, e.timestamp_ms, e.event_id, channel=e.channel)
            )
        for p, evs in by_part.items():
            owner[p].process(p, evs, 0)
            if durable:
                owner[p].mark_durable(owner[p].take_changes())


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
                live = positive(counters(part.aggregates, name))
                again = positive(counters(rebuilt.aggregates, name))
                floor = part.meta.today - 35
                live = {k: v for k, v in live.items() if _day(k) >= floor}
                again = {k: v for k, v in again.items() if _day(k) >= floor}
                assert live == again, name


def counters(agg: Aggregates, name: str) -> dict[Any, int]:
    """One counter of ``agg``, those keyed by several numbers keyed by tuples."""
    flat = flat_counts(agg)
    return flat[name] if name in flat else dict(getattr(agg, name))


def positive(counts: dict[Any, int]) -> dict[Any, int]:
    """The counters above zero (a key may hold 0 once its users moved on)."""
    return {k: v for k, v in counts.items() if v > 0}


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


# The fault scenarios' input (tests/faults/conftest.py, as CI ran it: seed 404, 2,000 users,
# disordered, cut a minute before the scenario starts, then a clock event per input partition):
# cut at these moments of the day, a return read after a deadline the clock had not passed was
# missing from DAU, WAU and the lifecycle (17:46:43 failed in CI; 17:30 found by a sweep over
# every half hour of the day, which finds nothing once deferred events count).
FAULT_INPUT_CUTS = ("17:30:06.403", "17:46:43.449")


@pytest.mark.parametrize("cut", FAULT_INPUT_CUTS)
def test_gauges_of_the_fault_input_cut_at_any_time_of_day(cut: str) -> None:
    hours, minutes, seconds = cut.split(":")
    of_day = round((int(hours) * 3600 + int(minutes) * 60 + float(seconds)) * 1000)
    end_ms = T0 + (FAULT_DAYS - 1) * DAY_MS + of_day
    events, clocks = event_input(404, end_ms, users=2000)
    engine = Engine(engine_config())
    for p in range(FAULT_PARTITIONS):
        engine.assign(p, {})
    owner = dict.fromkeys(range(FAULT_PARTITIONS), engine)
    stream = disorder(events, 405, HOUR)
    for part in (stream, clocks):  # the input, then the closing clock events in one batch
        fold_in_chunks(
            owner, part, 200, lambda e: partition_for(e.user_id.encode(), FAULT_PARTITIONS)
        )
    for p in range(FAULT_PARTITIONS):
        engine.process(p, [], 0)
        engine.partitions[p].meta.watermark_ms = end_ms - HOUR  # each partition's clock, idle
    snap, today = engine.snapshot(0)
    assert today == (end_ms - HOUR) // DAY_MS
    oracle = Oracle.from_events(events + clocks, FAULT_CHANNELS)
    assert {w: snap.active[w] for w in ("1d", "7d", "30d")} == {
        f"{n}d": oracle.active(today, n) for n in (1, 7, 30)
    }
    assert dict(snap.lifecycle) == oracle.lifecycle(today)
