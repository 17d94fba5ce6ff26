"""Activation funnels: the declaration, the per-user progress fold and the stalled signal.

Progress and the stalled signals are checked against the independent oracle
(``tests/funnel_oracle.py``) with events duplicated, reordered within the allowed lateness and
cut into random batches; the engine runs on the event clock, so the set of stalled signals must
be exactly the oracle's.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.logic.days import DAY_MS
from agents.logic.engine import Engine
from agents.logic.funnel_counts import week_label
from agents.logic.funnels import (
    ACTIVATION_FUNNEL,
    EARLY_HITS,
    compact,
    observe,
    parse_funnels,
    reached,
    render_funnels,
)
from agents.logic.state import Track, UserState, decode, encode
from schemas.errors import SettingsError
from streams.settings import Settings
from streams.tools.onboarding import ONBOARDING_STEPS
from tests.funnel_oracle import FunnelSpec, Hit, expected_counts, expected_stalls, progress
from tests.unit.conftest import CHANNELS, T0, engine_config, make_event

HOUR = 3_600_000
LATENESS = HOUR
TYPES = ("signup", "login", "value", "page_view")
FUNNELS_JSON = (
    '[{"name": "onboarding", "steps": ["signup", "login", "value"], "window": "3d"},'
    ' {"name": "again", "steps": ["login", "login"], "window": "24h"}]'
)
FUNNELS = parse_funnels(FUNNELS_JSON)
SPECS = [FunnelSpec(f.name, tuple(s.event_type for s in f.steps), f.window_ms) for f in FUNNELS]


# -- declaration -------------------------------------------------------------------------------
def test_the_activation_funnel_follows_the_simulators_onboarding() -> None:
    assert Settings.from_env({}).funnels == ()  # off unless declared
    (funnel,) = Settings.from_env({"ENGAGEMENT_FUNNELS": ACTIVATION_FUNNEL}).funnels
    assert funnel.name == "activation"
    assert tuple(s.event_type for s in funnel.steps) == ONBOARDING_STEPS
    assert funnel.window_ms == 7 * DAY_MS


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[{"name": "a", "steps": ["x"], "window": "7d"}]', "funnel 'a': steps must be"),
        ('[{"name": "b", "steps": ["x", "y"], "window": "7w"}]', "funnel 'b': window"),
        ('[{"name": "c", "steps": ["x", 3], "window": "7d"}]', "funnel 'c' step 2"),
        ('[{"name": "d", "steps": ["x", "y"], "window": "1d", "when": 1}]', "funnel 'd': unknown"),
        ('[{"steps": ["x", "y"], "window": "1d"}]', "funnel #1 needs a lower-case name"),
        ('{"name": "e"}', "must be a JSON list"),
        ("[1", "not a JSON list"),
    ],
)
def test_a_bad_funnel_stops_start_up_naming_it(text: str, message: str) -> None:
    with pytest.raises(SettingsError, match="ENGAGEMENT_FUNNELS") as info:
        Settings.from_env({"ENGAGEMENT_FUNNELS": text})
    assert message in str(info.value)


def test_a_repeated_funnel_name_is_refused() -> None:
    text = '[{"name": "a", "steps": ["x", "y"], "window": "1d"}] '.strip()
    twice = f"[{text[1:-1]}, {text[1:-1]}]"
    with pytest.raises(SettingsError, match="funnel 'a' is declared twice"):
        Settings.from_env({"ENGAGEMENT_FUNNELS": twice})


def test_property_matches_are_declared_and_taken_at_start_up() -> None:
    text = '[{"name": "pro", "steps": ["x", {"event_type": "buy", "match": {"plan": "pro"}}],'
    text += ' "window": "1d"}]'
    assert parse_funnels(text)[0].steps[1].matches("buy", {"plan": "pro"})
    assert not parse_funnels(text)[0].steps[1].matches("buy", {"plan": "free"})
    (funnel,) = Settings.from_env({"ENGAGEMENT_FUNNELS": text}).funnels
    assert funnel.steps[1].label == "buy[plan=pro]"


def test_funnels_from_a_file_and_back_through_the_environment(tmp_path) -> None:
    path = tmp_path / "funnels.json"
    path.write_text(FUNNELS_JSON)
    settings = Settings.from_env({"ENGAGEMENT_FUNNELS": str(path)})
    assert settings.funnels == FUNNELS
    assert Settings.from_env(settings.as_env()).funnels == FUNNELS
    assert parse_funnels(render_funnels(FUNNELS)) == FUNNELS
    assert Settings.from_env({"ENGAGEMENT_FUNNELS": ""}).funnels == ()


# -- progress ------------------------------------------------------------------------------------
def test_steps_count_in_order_within_the_window_from_the_first_step() -> None:
    funnel = FUNNELS[0]
    hits = [(5, 1), (10, 0), (10, 1), (20, 0), (30, 1), (40, 2)]
    assert reached(hits, funnel) == [10, 30, 40]  # login at 5 is before entry, at 10 not after
    assert reached([(10, 0), (10 + funnel.window_ms + 1, 1)], funnel) == [10]
    assert reached([(1, 1), (2, 2)], funnel) == []


def test_one_event_never_counts_for_two_steps() -> None:
    tracks: list[Track] = []
    observe(tracks, FUNNELS, T0, "login")
    (track,) = (t for t in tracks if t.key == FUNNELS[1].key)
    assert reached(track.hits, FUNNELS[1]) == [T0]
    observe(tracks, FUNNELS, T0 + HOUR, "login")
    assert reached(track.hits, FUNNELS[1]) == [T0, T0 + HOUR]


@st.composite
def _hits(draw: st.DrawFn) -> list[Hit]:
    n = draw(st.integers(1, 5))  # at most EARLY_HITS early hits of a step: no exception case
    return [
        Hit("u", f"e{i}", draw(st.sampled_from(TYPES)), T0 + draw(st.integers(0, 5 * DAY_MS)))
        for i in range(n)
    ]


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_progress_is_the_oracles_in_any_order_and_with_duplicates(data: st.DataObject) -> None:
    events = data.draw(_hits())
    arrival = data.draw(st.permutations(events + events[: len(events) // 2]))
    tracks: list[Track] = []
    for e in arrival:
        observe(tracks, FUNNELS, e.ms, e.event_type)
    for funnel, spec in zip(FUNNELS, SPECS, strict=True):
        track = next((t for t in tracks if t.key == funnel.key), Track(funnel.key))
        assert reached(track.hits, funnel) == progress(events, spec)
        assert compact(track.hits, funnel) == track.hits


def test_the_kept_hits_stay_bounded() -> None:
    tracks: list[Track] = []
    for i in range(200):
        observe(tracks, FUNNELS, T0 + i * 60_000, TYPES[i % 3])
    assert all(len(t.hits) <= 1 + 2 * (EARLY_HITS + 1) for t in tracks)


# -- state v4 -------------------------------------------------------------------------------------
def test_funnel_progress_round_trips_in_state_v4_and_older_states_still_read() -> None:
    state = UserState(first_ms=T0, last_ms=T0 + HOUR, last_day=20454)
    assert encode(state)[0] == 1
    state.funnels = [Track(7, [(T0, 0), (T0 + HOUR, 1)], stalled=True), Track(9, [(T0, 2)])]
    raw = encode(state)
    assert raw[0] == 4
    assert decode(raw) == state
    state.marks = [(0, 1, 2, T0, 0)]
    state.pending = [(T0 + DAY_MS, 5, -1, 1)]
    assert decode(encode(state)) == state
    state.funnels = []
    assert encode(state)[0] == 3 and decode(encode(state)) == state


# -- stalled signals ------------------------------------------------------------------------------
def _population(rnd: random.Random, users: int) -> list[Hit]:
    events = []
    for u in range(users):
        start = T0 + rnd.randrange(0, 2 * DAY_MS)
        for i in range(rnd.randint(1, 5)):
            ms = start + rnd.randrange(0, 4 * DAY_MS)
            events.append(Hit(f"u{u}", f"u{u}-{i}", rnd.choice(TYPES), ms))
    return events


def _channel(user: str) -> str:
    return CHANNELS[int(user[1:]) % len(CHANNELS)]


def _run(events: list[Hit], rnd: random.Random, end_ms: int) -> tuple[list[dict[str, Any]], Engine]:
    """Duplicated, reordered within the lateness (never read late), in random batches."""
    arrival = events + rnd.sample(events, len(events) // 3)
    jitter = {id(e): rnd.randrange(LATENESS) for e in arrival}
    arrival.sort(key=lambda e: e.ms + jitter[id(e)])
    eng = Engine(engine_config(lateness_ms=LATENESS, funnels=FUNNELS))
    eng.assign(0, {})
    signals: list[dict[str, Any]] = []
    while arrival:
        size = rnd.randint(1, 6)
        batch, arrival = arrival[:size], arrival[size:]
        made = [
            make_event(e.user_id, e.ms, e.event_id, e.event_type, _channel(e.user_id))
            for e in batch
        ]
        signals += [s for _, _, s in eng.process(0, made, end_ms).signals]
    eng.observe_watermark(0, end_ms)
    signals += [s for _, _, s in eng.tick(end_ms).signals]
    return [s for s in signals if s["kind"] == "stalled"], eng


@pytest.mark.parametrize("seed", range(12))
def test_stalled_signals_are_exactly_the_oracles(seed: int) -> None:
    rnd = random.Random(seed)
    events = _population(rnd, 40)
    end_ms = T0 + 6 * DAY_MS + rnd.randrange(0, 3 * DAY_MS)
    got, _ = _run(events, rnd, end_ms)
    expected = expected_stalls(events, SPECS, end_ms)
    assert len(got) == len({s["signal_id"] for s in got}), "a stall fired twice"
    seen = {
        (
            s["user_id"],
            s["reasons"]["funnel"]["name"],
            s["event_time_ms"],
            s["reasons"]["funnel"]["step_reached"],
            s["reasons"]["funnel"]["reached_at_ms"],
        )
        for s in got
    }
    assert seen == {
        (x.user_id, x.funnel, x.at_ms, x.step_reached, x.reached_at_ms) for x in expected
    }
    assert {s["signal_id"] for s in got} == {x.signal_id for x in expected}
    assert expected, "the population should stall someone"


def test_a_converted_user_never_stalls_and_a_stall_fires_once() -> None:
    eng = Engine(engine_config(funnels=FUNNELS))
    eng.assign(0, {})
    steps = [("done", "signup", 0), ("done", "login", 1), ("done", "value", 2)]
    steps += [("stuck", "signup", 0), ("stuck", "login", 5)]
    made = [make_event(u, T0 + h * HOUR, event_type=t) for u, t, h in steps]
    out = eng.process(0, made, T0)
    assert not [s for _, _, s in out.signals if s["kind"] == "stalled"]
    later = T0 + 4 * DAY_MS
    eng.observe_watermark(0, later)
    fired = [s for _, _, s in eng.tick(later).signals if s["kind"] == "stalled"]
    by_funnel = {(s["reasons"]["funnel"]["name"], s["user_id"]): s["event_time_ms"] for s in fired}
    # "again" (login, login within 24h): both logged in once only
    assert by_funnel == {
        ("onboarding", "stuck"): T0 + 3 * DAY_MS,
        ("again", "done"): T0 + 25 * HOUR,
        ("again", "stuck"): T0 + 29 * HOUR,
    }
    fired = [s for s in fired if s["reasons"]["funnel"]["name"] == "onboarding"]
    funnel = fired[0]["reasons"]["funnel"]
    assert (funnel["step_reached"], funnel["next_step_event"]) == (2, "value")
    assert funnel["days_at_step"] == round(3 - 5 / 24, 4)
    eng.observe_watermark(0, later + DAY_MS)
    assert not [s for _, _, s in eng.tick(later + DAY_MS).signals if s["kind"] == "stalled"]


@pytest.mark.parametrize("seed", range(8))
def test_funnel_gauges_are_the_oracles_counts(seed: int) -> None:
    rnd = random.Random(100 + seed)
    events = _population(rnd, 60)
    _, eng = _run(events, rnd, T0 + 9 * DAY_MS)
    counts = eng.funnel_snapshot(T0 + 9 * DAY_MS)
    labels = ("other", *CHANNELS)
    got = {
        (FUNNELS[f].name, k + 1, labels[ch], week_label(week)): users
        for (f, k, ch, week), users in counts.reached.items()
        if users
    }
    channel_of = {e.user_id: _channel(e.user_id) for e in events}
    assert got == expected_counts(events, SPECS, channel_of)
    assert sum(counts.step_time.values()) == sum(
        users for (_, k, _, _), users in counts.reached.items() if k > 0
    )


def test_funnel_gauges_follow_a_partition_taken_over_from_its_store() -> None:
    rnd = random.Random(3)
    events = _population(rnd, 30)
    _, eng = _run(events, rnd, T0 + 9 * DAY_MS)
    eng.take_changes()
    store: dict[bytes, bytes] = {}
    for part in eng.partitions.values():
        store.update({k: v for k, v in part.flushing.items() if v is not None})
    again = Engine(engine_config(lateness_ms=LATENESS, funnels=FUNNELS))
    again.assign(0, store)
    again.observe_watermark(0, T0 + 9 * DAY_MS)
    assert again.funnel_snapshot(T0).reached == eng.funnel_snapshot(T0).reached
