"""Golden tests of the ingest stage: one JSON file per case in golden/ingest/.

Each file holds ``description``, ``value`` (text, or ``value_b64`` for raw bytes, or null),
``headers`` ([name, text | null | {"b64": ...}] pairs), ``now_ms``, optional ``limits``
overrides, and ``expect``: ``{"event": {...Event fields...}}`` or ``{"reason": "..."}``.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fastjsonschema
import orjson
import pytest

from agents.logic.ingest import (
    ERROR_HEADER_PREFIX,
    Reason,
    Rejection,
    dead_letter_headers,
    extract_user_id,
    ingest,
    limits_from,
)
from schemas import EXAMPLES_DIR, load_schema
from schemas.records import Event

GOLDEN = Path(__file__).parent / "golden" / "ingest"
CASES = sorted(GOLDEN.glob("*.json"))
LIMITS = limits_from(65_536, 600.0, [1])
NOW_MS = 1_714_564_860_000  # 2024-05-01T12:01:00Z
EVENT_DEFAULTS = {
    f.name: f.default for f in dataclasses.fields(Event) if f.default is not dataclasses.MISSING
}


def _load(path: Path) -> dict[str, Any]:
    case: dict[str, Any] = orjson.loads(path.read_bytes())
    return case


def _value(case: dict[str, Any]) -> bytes | None:
    if "value_b64" in case:
        return base64.b64decode(case["value_b64"])
    return None if case["value"] is None else case["value"].encode()


def _header_value(raw: Any) -> bytes | None:
    if isinstance(raw, dict):
        return base64.b64decode(raw["b64"])
    return None if raw is None else raw.encode()


def _headers(case: dict[str, Any]) -> list[tuple[str, bytes | None]]:
    return [(name, _header_value(raw)) for name, raw in case["headers"]]


def _decoder(case: dict[str, Any]) -> Callable[[bytes], Any] | None:
    """A stand-in for the registry decoder (the real one: tests/integration/
    test_registry_input.py): answers the case's ``decoder`` record or rejection."""
    answer = case.get("decoder")
    if answer is None:
        return None
    if "reason" in answer:
        rejection = Rejection(Reason(answer["reason"]), answer["message"])
        return lambda value: rejection
    return lambda value: answer["record"]


def _run(case: dict[str, Any]) -> Event | Rejection:
    limits = dataclasses.replace(LIMITS, **case.get("limits", {}))
    return ingest(_value(case), _headers(case), case["now_ms"], limits, _decoder(case))


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_golden(path: Path) -> None:
    case = _load(path)
    result = _run(case)
    expect = case["expect"]
    if "reason" in expect:
        assert isinstance(result, Rejection), f"{case['description']}: got {result}"
        assert result.reason == Reason(expect["reason"]), result.message
        assert result.message
    else:
        assert isinstance(result, Event), f"{case['description']}: got {result}"
        assert dataclasses.asdict(result) == {**EVENT_DEFAULTS, **expect["event"]}


def test_golden_files_cover_every_reason_and_shape() -> None:
    expects = [_load(path)["expect"] for path in CASES]
    reasons = {e["reason"] for e in expects if "reason" in e}
    assert reasons == {r.value for r in Reason}
    shapes = {e["event"]["shape"] for e in expects if "event" in e}
    assert shapes == {"canonical", "cloudevents", "segment"}
    names = {p.stem for p in CASES}
    for required in (
        "canonical_string_timestamp",
        "canonical_epoch_ms",
        "cloudevents_structured",
        "cloudevents_binary",
        "segment_track",
        "rudderstack_track",
        "segment_anonymous_id",
    ):
        assert required in names


def test_golden_files_are_well_formed() -> None:
    for path in CASES:
        case = _load(path)
        assert {"description", "headers", "now_ms", "expect"} <= case.keys(), path.name
        assert ("value" in case) != ("value_b64" in case), path.name
        assert len(case["expect"]) == 1, path.name


def test_rejection_messages_never_contain_the_user_id() -> None:
    secret = "user-SECRET-42"
    payloads = [
        {"event_id": "e", "user_id": secret, "event_type": "x", "timestamp": "bad"},
        {"event_id": "e", "user_id": secret, "event_type": "x", "timestamp": 9_999_999_999_999},
        {
            "event_id": "e",
            "user_id": secret,
            "event_type": "x",
            "timestamp": 1_714_564_800_000,
            "schema_version": 9,
        },
        {"event_id": "e", "user_id": secret, "event_type": ["x"], "timestamp": 1_714_564_800_000},
        {
            "event_id": "e",
            "user_id": secret,
            "event_type": "x",
            "timestamp": 1_714_564_800_000,
            "properties": {str(i): i for i in range(65)},
        },
    ]
    for payload in payloads:
        result = ingest(orjson.dumps(payload), None, NOW_MS, LIMITS)
        assert isinstance(result, Rejection)
        assert secret not in result.message


# -- examples shipped with the contract -----------------------------------------------------


@pytest.mark.parametrize(
    ("name", "shape"),
    [
        ("canonical", "canonical"),
        ("cloudevents_structured", "cloudevents"),
        ("segment_track", "segment"),
        ("rudderstack_track", "segment"),
    ],
)
def test_examples_are_accepted(name: str, shape: str) -> None:
    result = ingest((EXAMPLES_DIR / f"{name}.json").read_bytes(), None, NOW_MS, LIMITS)
    assert isinstance(result, Event), result
    assert (result.shape, result.user_id, result.timestamp_ms) == (
        shape,
        "u-1842",
        1_714_564_800_123,
    )


def test_binary_cloudevent_example_is_accepted() -> None:
    meta = orjson.loads((EXAMPLES_DIR / "cloudevents_binary.headers.json").read_bytes())
    headers = [(name, text.encode()) for name, text in meta["headers"]]
    value = (EXAMPLES_DIR / "cloudevents_binary.json").read_bytes()
    result = ingest(value, headers, NOW_MS, LIMITS)
    assert isinstance(result, Event), result
    assert (result.shape, result.user_id, meta["key"]) == ("cloudevents", "u-1842", "u-1842")


def test_schema_examples_validate() -> None:
    for name in ("user_event", "dead_letter"):
        schema = load_schema(name)
        validate = fastjsonschema.compile(schema)
        for example in schema["examples"]:
            validate(example)


def test_dead_letter_schema_lists_exactly_the_reasons() -> None:
    schema = load_schema("dead_letter")
    assert schema["properties"]["error"]["properties"]["reason"]["enum"] == [
        r.value for r in Reason
    ]


# -- round trip, extract_user_id, limits, dead-letter headers -------------------------------


def test_wire_form_of_an_event_ingests_to_the_same_event() -> None:
    for path in CASES:
        result = _run(_load(path))
        if isinstance(result, Event):
            again = ingest(result.to_json(), None, NOW_MS + 3_600_000, LIMITS)
            assert again == dataclasses.replace(result, shape="canonical"), path.name


@pytest.mark.parametrize(
    ("obj", "headers", "expected"),
    [
        ({"user_id": "u-1"}, None, "u-1"),
        ({"user_id": "  "}, None, None),
        ({"user_id": 5}, None, None),
        ({"type": "track", "messageId": "m", "anonymousId": "a-1"}, None, "a-1"),
        ({"type": "track", "messageId": "m", "userId": 12, "anonymousId": "a-1"}, None, "12"),
        (
            {"specversion": "1.0", "id": "1", "source": "/s", "type": "t", "subject": "u-2"},
            None,
            "u-2",
        ),
        (
            {"user_id": "u-3"},
            [
                ("ce_specversion", b"1.0"),
                ("ce_id", b"1"),
                ("ce_source", b"/s"),
                ("ce_type", b"t"),
                ("ce_subject", b"u-4"),
            ],
            "u-3",
        ),
        (
            None,
            [
                ("ce_specversion", b"1.0"),
                ("ce_id", b"1"),
                ("ce_source", b"/s"),
                ("ce_type", b"t"),
                ("ce_userid", b"u-5"),
            ],
            "u-5",
        ),
        ([1, 2], None, None),
        ({"hello": "world"}, None, None),
    ],
)
def test_extract_user_id(obj: Any, headers: Any, expected: str | None) -> None:
    assert extract_user_id(obj, headers) == expected


def test_limits_from_settings_units() -> None:
    limits = limits_from(1024, 0.25, (1, 2, 2))
    assert (limits.max_message_bytes, limits.max_future_skew_ms) == (1024, 250)
    assert limits.schema_versions == frozenset({1, 2})


def test_dead_letter_headers_keep_originals_and_add_error_headers() -> None:
    rejection = Rejection(Reason.INVALID_JSON, "not valid JSON")
    original = [("traceparent", b"00-1"), ("empty", None), ("engagement.error.reason", b"old")]
    headers = dead_letter_headers(original, rejection, "user.events", 3, 42, 1_714_564_800_000)
    assert headers[:2] == [("traceparent", b"00-1"), ("empty", None)]
    added = dict(headers[2:])
    assert added == {
        f"{ERROR_HEADER_PREFIX}reason": b"invalid_json",
        f"{ERROR_HEADER_PREFIX}message": b"not valid JSON",
        f"{ERROR_HEADER_PREFIX}topic": b"user.events",
        f"{ERROR_HEADER_PREFIX}partition": b"3",
        f"{ERROR_HEADER_PREFIX}offset": b"42",
        f"{ERROR_HEADER_PREFIX}timestamp": b"1714564800000",
    }
    assert len(headers) == 8


def test_dead_letter_headers_without_original_headers() -> None:
    headers = dead_letter_headers(None, Rejection(Reason.EMPTY, "x" * 5000), "t", 0, 0, 0)
    assert [name for name, _ in headers] == [
        f"{ERROR_HEADER_PREFIX}{n}"
        for n in ("reason", "message", "topic", "partition", "offset", "timestamp")
    ]
    assert len(dict(headers)[f"{ERROR_HEADER_PREFIX}message"] or b"") == 1000


def test_headers_may_be_a_mapping() -> None:
    headers = {
        "ce_specversion": b"1.0",
        "ce_id": b"1",
        "ce_source": b"/s",
        "ce_type": b"t",
        "ce_time": b"2024-05-01T12:00:00Z",
        "ce_userid": b"u-1",
    }
    result = ingest(b"", headers, NOW_MS, LIMITS)
    assert isinstance(result, Event) and result.event_id == "/s/1", result
    assert dead_letter_headers({"a": b"1"}, Rejection(Reason.EMPTY, "e"), "t", 0, 0, 0)[0] == (
        "a",
        b"1",
    )
