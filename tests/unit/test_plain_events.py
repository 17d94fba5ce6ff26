"""The quick check of the usual event shape never accepts what the JSON Schema rejects.

The oracle is fastjsonschema over the published schema file; the check is held against it on
generated events around every limit, and must turn itself off for a schema with a rule it does
not know.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import fastjsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.logic import plain_events
from agents.logic.plain_events import plainly_valid
from schemas import load_schema

SCHEMA = load_schema("user_event")
VALIDATE = fastjsonschema.compile(SCHEMA)
T = 1_714_564_860_000


def passes_schema(event: dict[str, Any]) -> bool:
    try:
        VALIDATE(copy.deepcopy(event))  # the validator fills in defaults: keep ours as it was
    except fastjsonschema.JsonSchemaValueException:
        return False
    return True


def usual(**fields: Any) -> dict[str, Any]:
    event = {
        "schema_version": 1,
        "event_id": "e-1",
        "user_id": "u-1",
        "event_type": "page_view",
        "timestamp": T,
        "channel": "organic",
        "platform": "web",
    }
    event.update(fields)
    return {k: v for k, v in event.items() if v is not ...}


def text(limit: int) -> st.SearchStrategy[str]:
    """Strings around ``limit`` characters, blank ones and odd whitespace included."""
    return st.one_of(
        st.text(max_size=3),
        st.sampled_from(["", " ", "\u00a0", "\u2028", "\x1c", "\t u", "é" * limit]),
        st.integers(limit - 1, limit + 1).map(lambda n: "x" * max(n, 0)),
    )


ANY = st.one_of(
    st.just(...),  # absent
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63),
    st.floats(allow_nan=False),
    st.just({}),
    st.just([]),
)
STAMPS = st.one_of(
    ANY,
    st.integers(99_999_999_999, 100_000_000_001),
    st.integers(253_402_300_799_998, 253_402_300_800_000),
    st.just("2024-05-01T12:00:00Z"),
    st.just(T),
)
PROPERTIES = st.one_of(ANY, st.integers(0, 66).map(lambda n: {f"k{i}": i for i in range(n)}))


FIELDS = {
    "event_id": st.one_of(ANY, text(200)),
    "user_id": st.one_of(ANY, text(200)),
    "event_type": st.one_of(ANY, text(100)),
    "timestamp": STAMPS,
    "channel": st.one_of(ANY, text(100)),
    "platform": st.one_of(ANY, text(100)),
    "session_id": st.one_of(ANY, text(200)),
    "properties": PROPERTIES,
    "schema_version": st.one_of(ANY, st.integers(-1, 3)),
}


@st.composite
def near_usual(draw: st.DrawFn) -> dict[str, Any]:
    """A usual event with one to three fields changed (all changed at once would almost never
    leave an event the check accepts)."""
    names = draw(st.lists(st.sampled_from(sorted(FIELDS)), min_size=1, max_size=3, unique=True))
    return usual(**{name: draw(FIELDS[name]) for name in names})


@settings(max_examples=4000)
@given(near_usual())
def test_what_the_quick_check_accepts_the_schema_accepts(event: dict[str, Any]) -> None:
    if plainly_valid(event):
        assert passes_schema(event), event


def test_the_usual_shapes_take_the_quick_way() -> None:
    assert plain_events._PLAIN  # on for the schema as published (a new rule turns it off)
    for event in (
        usual(),
        usual(schema_version=..., channel=None, platform=..., session_id="s-1"),
        usual(properties={"amount": 42.5}, user_id="x" * 200),
    ):
        assert plainly_valid(event) and passes_schema(event)
    for event in (
        usual(timestamp="2024-05-01T12:00:00Z"),  # strings: format checks are the validator's
        usual(user_id="\u00a0"),
        usual(user_id="\x00meta"),  # a reserved key of the state store: the validator refuses
        usual(timestamp=True),
        usual(schema_version=1.0),
    ):
        assert not plainly_valid(event)
    assert not passes_schema(usual(user_id="\x00meta")) and passes_schema(usual(user_id="a\x00"))


@pytest.mark.parametrize(
    "change",
    [
        lambda s: s["properties"]["event_type"].update(pattern="^[a-z_]+$"),
        lambda s: s["properties"]["channel"].update(minLength=2),
        lambda s: s["properties"]["schema_version"].update(maximum=3),
        lambda s: s["properties"].update(country={"type": "string"}),
        lambda s: s.update(additionalProperties=False),
        lambda s: s["required"].append("channel"),
        lambda s: s.update(allOf=[{"required": ["platform"]}]),
    ],
)
def test_a_rule_the_check_does_not_know_turns_it_off(change: Any) -> None:
    schema = copy.deepcopy(SCHEMA)
    change(schema)
    assert not plain_events._plain_check_applies(schema)


def test_str_whitespace_is_the_patterns_whitespace() -> None:
    """The check reads the schema's ``\\S`` as ``not str.isspace()``: the same characters."""
    pattern = re.compile(r"\S")
    assert all(bool(pattern.search(chr(c))) != chr(c).isspace() for c in range(0x110000))
