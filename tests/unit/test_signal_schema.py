"""Every signal the engine emits matches schemas/signal.schema.json, and Signal reads it back."""

from __future__ import annotations

import copy
from typing import Any

import fastjsonschema
import orjson
import pytest

from agents.logic.days import DAY_MS
from agents.logic.engine import Engine
from agents.logic.funnels import parse_funnels
from agents.logic.state import Stage
from schemas import EXAMPLES_DIR, load_schema
from schemas.records import SIGNAL_KINDS, Signal
from tests.unit.conftest import T0, engine_config, make_event

HOUR = 3_600_000
SCHEMA = load_schema("signal")
VALIDATE = fastjsonschema.compile(SCHEMA)


def scripted_signals(clock: str) -> list[dict[str, Any]]:
    """A population that produces every kind: stayers, faders, a returner, a lapsed buyer."""
    funnels = parse_funnels('[{"name": "buy", "steps": ["page_view", "purchase"], "window": "2d"}]')
    eng = Engine(engine_config(clock=clock, threshold=0.3, funnels=funnels))
    eng.assign(0, {})
    signals: list[dict[str, Any]] = []

    def run(events, day: int) -> None:
        wall = T0 + day * DAY_MS + 2 * HOUR
        out = eng.process(0, events, wall, T0 + day * DAY_MS)
        signals.extend(s for _, _, s in out.signals)

    run([make_event("fader", T0 + HOUR, channel="email")], 0)
    run([make_event("returner", T0 + 2 * HOUR, channel="paid_search")], 0)
    run([make_event("drifter", T0 + 3 * HOUR, channel="tiktok")], 0)
    for d in range(0, 75):
        events = [make_event("stayer", T0 + d * DAY_MS + HOUR)]
        if d < 30:
            events.append(make_event("buyer", T0 + d * DAY_MS + HOUR, event_type="purchase"))
        elif d < 41:
            events.append(make_event("buyer", T0 + d * DAY_MS + HOUR))
        if d in (45, 46):
            events.append(make_event("returner", T0 + d * DAY_MS + 5 * HOUR))
        if d % 3 == 0 and d < 20:
            events.append(make_event("drifter", T0 + d * DAY_MS + 4 * HOUR, event_type="share"))
        run(events, d)
    return signals


@pytest.fixture(scope="module", params=["event", "wall"])
def signals(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return scripted_signals(request.param)


def test_the_script_covers_every_kind_and_a_category_decline(signals) -> None:
    assert {s["kind"] for s in signals} == set(SIGNAL_KINDS)
    assert any(s["reasons"]["category_declines"] for s in signals)
    assert all(("funnel" in s["reasons"]) == (s["kind"] == "stalled") for s in signals)
    assert {s["channel"] for s in signals} >= {"email", "paid_search", "other"}


def test_every_emitted_signal_matches_the_schema(signals) -> None:
    for signal in signals:
        VALIDATE(signal)


def test_reactivations_carry_days_dormant(signals) -> None:
    back = [s for s in signals if s["kind"] == "reactivated"]
    assert back
    for signal in back:
        assert signal["reasons"]["days_dormant"] == signal["reasons"]["days_inactive"]
        assert signal["trigger"] == "activity"


def test_signal_from_json_round_trips(signals) -> None:
    for raw in signals:
        signal = Signal.from_json(orjson.dumps(raw))
        assert signal.to_dict() == raw
        assert Signal.from_json(signal.to_json()) == signal
        assert signal.kind == raw["kind"] and signal.event_time_ms == raw["event_time_ms"]


@pytest.mark.parametrize("name", ["signal_dormant.json", "signal_reactivated.json"])
def test_examples_match_the_schema(name: str) -> None:
    example = orjson.loads((EXAMPLES_DIR / name).read_bytes())
    VALIDATE(example)
    assert example in SCHEMA["examples"]
    assert Signal.from_json((EXAMPLES_DIR / name).read_bytes()).to_dict() == example


def test_schema_enums_follow_the_code() -> None:
    props = SCHEMA["properties"]
    assert props["kind"]["enum"] == list(SIGNAL_KINDS)
    assert set(props["stage_before"]["enum"]) == {stage.label for stage in Stage}
    assert props["clock"]["enum"] == ["wall", "event"]


def _mutated(change) -> dict[str, Any]:
    example: dict[str, Any] = copy.deepcopy(
        orjson.loads((EXAMPLES_DIR / "signal_dormant.json").read_bytes())
    )
    change(example)
    return example


@pytest.mark.parametrize(
    "change",
    [
        lambda s: s.pop("signal_id"),
        lambda s: s.update(kind="bored"),
        lambda s: s.update(stage_after="churned"),
        lambda s: s.update(trigger="activity"),
        lambda s: s.update(clock="lunar"),
        lambda s: s.update(extra=1),
        lambda s: s["reasons"].update(days_dormant=1.0),
        lambda s: s["reasons"].pop("p_alive"),
        lambda s: s["reasons"]["category_declines"][0].update(decline=1.5),
        lambda s: s.update(event_time="2026-02-10 09:15:00"),
    ],
)
def test_schema_rejects_drift(change) -> None:
    with pytest.raises(fastjsonschema.JsonSchemaValueException):
        VALIDATE(_mutated(change))


@pytest.mark.parametrize("bad", [b"not json", b"[]", b'{"kind": "dormant"}'])
def test_from_json_rejects_non_signals(bad: bytes) -> None:
    with pytest.raises(ValueError):
        Signal.from_json(bad)
