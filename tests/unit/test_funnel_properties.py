"""Funnel steps with a property match, across the ``events.by_user`` hop.

The ingest stage matches each event's properties against the property steps and the by_user row
carries the ids of the steps it matched (``"fm"``); the fold counts a property step only for an
event carrying its id. Checked against the independent oracle (``tests/funnel_oracle.py``),
which sees the events' properties, through the real encoder and decoder.
"""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.logic.days import DAY_MS
from agents.logic.engine import Engine
from agents.logic.funnels import PropertySteps, observe, parse_funnels, reached, step_id
from agents.logic.state import Track
from schemas.errors import BatchDecodeError
from schemas.records import Activity, Event
from streams.worker.codecs import BatchReason, decode_record, encode_batch, encode_batches
from tests.funnel_oracle import FunnelSpec, Hit, expected_stalls, progress
from tests.unit.conftest import T0, engine_config

HOUR = 3_600_000
FUNNELS = parse_funnels(
    '[{"name": "paid", "steps": ["signup", {"event_type": "purchase", "match": {"plan": "pro"}},'
    ' {"event_type": "purchase", "match": {"plan": "pro", "annual": true}}], "window": "3d"},'
    ' {"name": "mixed", "steps": ["purchase", {"event_type": "login", "match": {"os": "ios"}}],'
    ' "window": "24h"}]'
)
SPECS = [  # the same funnels, written out for the oracle
    FunnelSpec(
        "paid",
        ("signup", ("purchase", {"plan": "pro"}), ("purchase", {"plan": "pro", "annual": True})),
        3 * DAY_MS,
    ),
    FunnelSpec("mixed", ("purchase", ("login", {"os": "ios"})), DAY_MS),
]
STEPS = PropertySteps.of(FUNNELS)
PRO, PRO_ANNUAL, IOS = step_id(FUNNELS[0], 1), step_id(FUNNELS[0], 2), step_id(FUNNELS[1], 1)
TYPES = ("signup", "purchase", "login", "page_view")
PROPERTIES: list[dict[str, Any] | None] = [
    None,
    {},
    {"plan": "pro"},
    {"plan": "free"},
    {"plan": "pro", "annual": True},
    {"plan": "pro", "annual": 1},  # 1 is not true
    {"plan": "pro", "annual": False, "os": "ios"},
    {"os": "ios"},
    {"os": "android"},
]


def _event(h: Hit) -> Event:
    props = dict(h.properties) if h.properties is not None else None
    return Event(h.event_id, h.user_id, h.event_type, h.ms, None, properties=props)


def _over_the_wire(events: list[Event], max_bytes: int = 1 << 20) -> list[Activity]:
    """What the activity stage reads of ``events`` after the ingest stage wrote them."""
    records = encode_batches(T0, events, "src", max_bytes, 500, steps=STEPS)
    return [row for _, value in records for row in decode_record(value)[2]]


# -- matching at ingest --------------------------------------------------------------------------
def test_ingest_matches_the_property_steps_of_the_events_type_only() -> None:
    assert STEPS.matched("purchase", {"plan": "pro"}) == (PRO,)
    assert STEPS.matched("purchase", {"plan": "pro", "annual": True, "x": 1}) == (PRO, PRO_ANNUAL)
    assert STEPS.matched("purchase", {"plan": "pro", "annual": 1}) == (PRO,)
    assert STEPS.matched("purchase", {"plan": "free"}) == ()
    assert STEPS.matched("purchase", None) == ()
    assert STEPS.matched("login", {"os": "ios"}) == (IOS,)
    assert STEPS.matched("signup", {"plan": "pro"}) == ()  # a plain step needs no match
    assert not PropertySteps.of(
        parse_funnels('[{"name": "a", "steps": ["x", "y"], "window": "1d"}]')
    )


def test_a_match_counts_only_for_the_same_step_definition() -> None:
    edited = parse_funnels(
        '[{"name": "paid", "steps": ["signup", {"event_type": "purchase", "match": '
        '{"plan": "team"}}, "purchase"], "window": "3d"}]'
    )
    assert step_id(edited[0], 1) != PRO  # ingest and fold on different ENGAGEMENT_FUNNELS
    tracks: list[Track] = []
    observe(tracks, edited, T0, "signup")
    observe(tracks, edited, T0 + HOUR, "purchase", (PRO,))
    assert reached(tracks[0].hits, edited[0]) == [T0]
    observe(tracks, edited, T0 + HOUR, "purchase", (step_id(edited[0], 1),))
    assert reached(tracks[0].hits, edited[0]) == [T0, T0 + HOUR]


# -- the by_user wire ----------------------------------------------------------------------------
def test_matches_round_trip_and_cost_nothing_on_events_without_any() -> None:
    events = [
        Event("e1", "u1", "purchase", T0, "ads", properties={"plan": "pro", "annual": True}),
        Event("e2", "u2", "purchase", T0 + 1, None, properties={"plan": "free"}),
        Event("e3", "u1", "login", T0 + 2, None, properties={"os": "ios"}),
    ]
    value = encode_batch(T0, events, "src", T0, STEPS)
    assert orjson.loads(value)["fm"] == [[0, PRO, PRO_ANNUAL], [2, IOS]]
    rows = decode_record(value)[2]
    assert [r.matches for r in rows] == [(PRO, PRO_ANNUAL), (), (IOS,)]
    assert rows[0][:5] == ("u1", T0, "e1", "purchase", "ads")
    assert encode_batch(T0, rows, "src", T0) == value  # an Activity keeps its matches
    assert "fm" not in orjson.loads(encode_batch(T0, events[1:2], "src", T0, STEPS))


def test_a_record_without_matches_reads_as_before() -> None:
    old = b'{"v":2,"wm":5,"src":"s","rows":[["u1",1,"e1","purchase",null]]}'
    assert decode_record(old) == (5, "s", [Activity("u1", 1, "e1", "purchase", None)], None)


@pytest.mark.parametrize("fm", ['"x"', "[[0]]", "[[1, 7]]", "[[-1, 7]]", '[[0, "7"]]', "[7]"])
def test_unreadable_matches_quarantine_the_record(fm: str) -> None:
    bad = f'{{"v":2,"wm":5,"src":"s","rows":[["u1",1,"e1","purchase",null]],"fm":{fm}}}'
    with pytest.raises(BatchDecodeError) as info:
        decode_record(bad.encode())
    assert info.value.reason == BatchReason.INVALID_BATCH


def test_matches_stay_on_their_rows_when_a_batch_is_split() -> None:
    events = [
        Event(
            f"e{i}", f"u{i}", "purchase", T0 + i, None, properties={"plan": "pro"} if i % 3 else {}
        )
        for i in range(60)
    ]
    records = encode_batches(T0, events, "src", 1_000, 500, steps=STEPS)
    assert len(records) > 1
    rows = [row for _, value in records for row in decode_record(value)[2]]
    assert [(r.event_id, r.matches) for r in rows] == [
        (f"e{i}", (PRO,) if i % 3 else ()) for i in range(60)
    ]


# -- the fold, against the oracle -----------------------------------------------------------------
@st.composite
def _hits(draw: st.DrawFn) -> list[Hit]:
    return [
        Hit(
            "u",
            f"e{i}",
            draw(st.sampled_from(TYPES)),
            T0 + draw(st.integers(0, 4 * DAY_MS)),
            draw(st.sampled_from(PROPERTIES)),
        )
        for i in range(draw(st.integers(1, 5)))
    ]


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_progress_with_property_steps_is_the_oracles(data: st.DataObject) -> None:
    hits = data.draw(_hits())
    arrival = data.draw(st.permutations(hits + hits[: len(hits) // 2]))
    events = [_event(h) for h in arrival]
    cfg = engine_config(funnels=FUNNELS).fold
    via_wire: list[Track] = []
    for row in _over_the_wire(events):
        observe(via_wire, FUNNELS, row.timestamp_ms, row.event_type, row.matches)
    with_properties: list[Track] = []  # read with properties (ENGAGEMENT_INPUT_KEYED_BY_USER)
    for e in events:
        matched = cfg.property_steps.matched(e.event_type, e.properties)
        observe(with_properties, FUNNELS, e.timestamp_ms, e.event_type, matched)
    assert via_wire == with_properties
    for funnel, spec in zip(FUNNELS, SPECS, strict=True):
        track = next((t for t in via_wire if t.key == funnel.key), Track(funnel.key))
        assert reached(track.hits, funnel) == progress(hits, spec)


def random_hits(seed: int, users: int) -> list[Hit]:
    """Up to six hits for each of ``users`` users over three days from a random start within
    two days of T0, in time order."""
    rnd = random.Random(seed)
    hits = []
    for u in range(users):
        start = T0 + rnd.randrange(0, 2 * DAY_MS)
        for i in range(rnd.randint(1, 6)):
            ms = start + rnd.randrange(0, 3 * DAY_MS)
            hits.append(Hit(f"u{u}", f"u{u}-{i}", rnd.choice(TYPES), ms, rnd.choice(PROPERTIES)))
    return sorted(hits, key=lambda h: h.ms)


@pytest.mark.parametrize("seed", range(6))
def test_stalled_signals_through_the_wire_are_the_oracles(seed: int) -> None:
    hits = random_hits(seed, 40)
    end_ms = T0 + 8 * DAY_MS
    eng = Engine(engine_config(funnels=FUNNELS))
    eng.assign(0, {})
    rows = _over_the_wire([_event(h) for h in hits], max_bytes=2_000)
    signals = [s for _, _, s in eng.process(0, rows, end_ms).signals]
    eng.observe_watermark(0, end_ms)
    signals += [s for _, _, s in eng.tick(end_ms).signals]
    stalls = [(s, s["reasons"]["funnel"]) for s in signals if s["kind"] == "stalled"]
    got = {(s["user_id"], f["name"], s["event_time_ms"], f["step_reached"]) for s, f in stalls}
    expected = expected_stalls(hits, SPECS, end_ms)
    assert got == {(x.user_id, x.funnel, x.at_ms, x.step_reached) for x in expected}
    assert expected, "the population should stall someone"


@pytest.mark.parametrize("seed", range(3))
def test_canonical_events_give_the_signals_of_their_wire_rows(seed: int) -> None:
    """The engine folds rows: a canonical event (tests, tools) becomes one with the property
    steps it matches found on the way in (agents.logic.fold.row_of), as the ingest finds them."""
    end_ms = T0 + 8 * DAY_MS
    events = [_event(h) for h in random_hits(seed, 30)]
    got = []
    for batch in (events, _over_the_wire(events)):
        eng = Engine(engine_config(funnels=FUNNELS))
        eng.assign(0, {})
        signals = [s for _, _, s in eng.process(0, batch, end_ms).signals]
        eng.observe_watermark(0, end_ms)
        signals += [s for _, _, s in eng.tick(end_ms).signals]
        got.append(signals)
    assert got[0] == got[1]
    assert any(s["kind"] == "stalled" for s in got[0])
