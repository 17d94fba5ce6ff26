"""The engine's signals do not depend on how a replay is cut into batches (event clock)."""

from __future__ import annotations

import random

import pytest

from agents.logic.days import DAY_MS
from agents.logic.engine import Engine
from agents.logic.signals import signal_id
from schemas.records import Event
from tests.unit.conftest import T0, engine_config, make_event

RETURNER_DAYS = (0, 1, 2, 12.5, 13, 14.2, 25.3)
# kind, event time (day), trigger (day): a return's trigger is the last activity before it
EXPECTED = [
    ("dormant", 9.0, 9.0),
    ("reactivated", 12.5, 2.0),
    ("dormant", 21.2, 21.2),
    ("reactivated", 25.3, 14.2),
    ("dormant", 32.3, 32.3),
]


def at(day: float) -> int:
    return T0 + round(day * DAY_MS)


def returner_and_clock() -> list[Event]:
    """The returner, and a clock user active every day so the watermark advances."""
    events = [make_event("u", at(day)) for day in RETURNER_DAYS]
    events += [make_event("clock", at(day) + 1) for day in range(40)]
    return sorted(events, key=lambda event: event.timestamp_ms)


def signals_of(batches: list[list[Event]]) -> list[tuple[str, float, str]]:
    eng = Engine(engine_config())
    eng.assign(0, {})
    out = []
    for batch in batches:
        for _, _, signal in eng.process(0, batch, 0).signals:
            if signal["user_id"] == "u":
                day = (signal["event_time_ms"] - T0) / DAY_MS
                out.append((signal["kind"], round(day, 6), signal["signal_id"]))
    return out


def random_split(events: list[Event], seed: int) -> list[list[Event]]:
    rnd = random.Random(seed)
    cuts = sorted(rnd.sample(range(1, len(events)), rnd.randint(1, 6)))
    return [events[i:j] for i, j in zip([0, *cuts], [*cuts, len(events)], strict=True)]


def by_day_12_5(events: list[Event]) -> list[list[Event]]:
    """One event per batch before day 12.5, everything from day 12.5 on in one batch."""
    early = [event for event in events if event.timestamp_ms < at(12.5)]
    return [[event] for event in early] + [events[len(early) :]]


@pytest.mark.parametrize(
    "split",
    [
        pytest.param(lambda events: [[event] for event in events], id="one-per-batch"),
        pytest.param(by_day_12_5, id="from-day-12.5-in-one"),
        pytest.param(lambda events: [events], id="all-in-one"),
        *(
            pytest.param(lambda events, seed=seed: random_split(events, seed), id=f"random-{seed}")
            for seed in range(6)
        ),
    ],
)
def test_a_return_inside_a_batch_reschedules_before_the_next_event(split) -> None:
    """After the return on day 12.5 the state's deadline is dormant on day 21.2, no longer the
    churned deadline of day 32 it had before: the events after the return are compared with
    the new one, so the dormancy from day 14.2 and its win-back on day 25.3 are not lost."""
    got = signals_of(split(returner_and_clock()))
    assert [(kind, day) for kind, day, _ in got] == [(kind, day) for kind, day, _ in EXPECTED]
    assert [sid for _, _, sid in got] == [
        signal_id("u", kind, at(trigger)) for kind, _, trigger in EXPECTED
    ]


def test_a_user_back_after_the_state_was_discarded_starts_afresh() -> None:
    """Day 0, then back on day 500 (the state is discarded after 400 days): the deadline fires
    the discard before the event, which re-creates the state; that state must be kept (it was
    deleted with the old one, so the return was forgotten and day 500 fired nothing)."""
    eng = Engine(engine_config())
    part = eng.assign(0, {})
    kinds = []
    for day in (0, 500, 600):  # one per batch; the user on day 600 only moves the clock
        user = "u" if day < 600 else "clock"
        for _, _, signal in eng.process(0, [make_event(user, at(day))], 0).signals:
            kinds.append((signal["kind"], (signal["event_time_ms"] - T0) / DAY_MS))
        if day == 500:  # the counters moved from the old state to the new one
            state = eng.user("u")
            assert state is not None and state.first_ms == at(500)
            eng.mark_durable(eng.take_changes())
            rebuilt = Engine(eng.config).assign(0, part.store).aggregates
            kept = part.meta.today - eng.config.aggregate_days
            live = {d: n for d, n in part.aggregates.active.items() if n > 0}
            assert {d: n for d, n in rebuilt.active.items() if d >= kept} == live
            assert {k: n for k, n in rebuilt.stages.items() if n > 0} == {
                k: n for k, n in part.aggregates.stages.items() if n > 0
            }
    assert kinds == [("dormant", 7), ("churned", 30), ("dormant", 507), ("churned", 530)]


@pytest.mark.parametrize("seed", range(3))
def test_a_users_events_out_of_order_in_a_batch_fold_as_in_order(seed: int) -> None:
    """The returner's events of one batch, shuffled among their places (the clock user's stay
    in order): the engine folds each user's events in event-time order, so the signals are
    the in-order ones."""
    events = returner_and_clock()
    places = [i for i, event in enumerate(events) if event.user_id == "u"]
    mine = [events[i] for i in places]
    random.Random(seed).shuffle(mine)
    if mine == sorted(mine, key=lambda event: event.timestamp_ms):
        mine.reverse()
    for i, event in zip(places, mine, strict=True):
        events[i] = event
    got = signals_of([events])
    assert [(kind, day) for kind, day, _ in got] == [(kind, day) for kind, day, _ in EXPECTED]
