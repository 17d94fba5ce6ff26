"""Property tests of the ingest stage: whatever bytes and headers arrive, ``ingest`` answers
exactly one Event or one Rejection, never raises, and every Event it accepts satisfies the
published JSON Schema in its wire form (and survives re-serialisation)."""

from __future__ import annotations

from typing import Any

import fastjsonschema
import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agents.logic.ingest import Reason, Rejection, ingest, limits_from
from schemas import load_schema
from schemas.records import Event

LIMITS = limits_from(65_536, 600.0, [1])
NOW_MS = 1_714_564_860_000
VALIDATE = fastjsonschema.compile(load_schema("user_event"))

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=25,
)
header_names = st.sampled_from(
    [
        "ce_specversion",
        "ce_id",
        "ce_source",
        "ce_type",
        "ce_time",
        "ce_subject",
        "ce_userid",
        "content-type",
        "CE_ID",
        "traceparent",
    ]
) | st.text(max_size=12)
header_values = (
    st.none()
    | st.binary(max_size=30)
    | st.sampled_from(
        [
            b"1.0",
            b"application/json",
            b"application/cloudevents+json",
            b"text/plain",
            b"2024-05-01T12:00:00Z",
            b"u-1",
            b"\xff",
        ]
    )
)
headers = st.none() | st.lists(st.tuples(header_names, header_values), max_size=8)

# Objects that look like each shape: plausible values most of the time, any JSON otherwise.
texts = st.sampled_from(["u-1", "e-1", "/src", "purchase", "", " ", "x" * 201]) | st.text(
    min_size=1, max_size=8
)
times = st.sampled_from(
    [
        "2024-05-01T12:00:00Z",
        "2024-05-01t12:00:00.5+02:00",
        "2024-05-01T12:00:00.123456789-07:00",
        "2024-02-30T00:00:00Z",
        "2024-05-01T12:00:00",
        "2016-12-31T23:59:60Z",
        1_714_564_800_000,
        1_714_564_800,
        9_999_999_999_999,
        1.7145648e12,
    ]
)


def mostly(good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``good`` seven times out of eight (one_of would not weight repeated branches)."""
    return st.integers(0, 7).flatmap(lambda i: bad if i == 0 else good)


ids = mostly(texts, json_values)
stamps = mostly(times, json_values)
canonical_like = st.fixed_dictionaries(
    {"event_id": ids, "user_id": ids, "event_type": ids, "timestamp": stamps},
    optional={
        "schema_version": mostly(st.just(1), st.sampled_from([2, 1.0, "1"])),
        "properties": st.none() | st.dictionaries(st.text(max_size=5), json_values) | json_values,
        **{key: ids for key in ("channel", "platform", "session_id")},
    },
)
ce_data = json_values | st.fixed_dictionaries(
    {}, optional={"user_id": ids, "timestamp": stamps, "properties": json_values}
)
cloudevent_like = st.fixed_dictionaries(
    {
        "specversion": mostly(st.just("1.0"), st.just("0.3") | json_values),
        **{key: ids for key in ("id", "source", "type")},
    },
    optional={
        "data": ce_data,
        "time": stamps,
        **{key: ids for key in ("subject", "userid", "channel", "sessionid")},
    },
)
segment_context = json_values | st.fixed_dictionaries(
    {},
    optional={
        "campaign": st.fixed_dictionaries({"source": ids}),
        "sessionId": ids,
        "device": json_values,
    },
)
segment_like = st.fixed_dictionaries(
    {
        "type": mostly(st.sampled_from(["track", "page", "screen"]), st.just("identify")),
        "messageId": ids,
    },
    optional={
        "context": segment_context,
        "properties": json_values,
        **{key: ids for key in ("userId", "anonymousId", "event", "channel")},
        **{key: stamps for key in ("timestamp", "originalTimestamp", "sentAt")},
    },
)
shaped = canonical_like | cloudevent_like | segment_like


def _check(result: Event | Rejection) -> None:
    assert isinstance(result, Event | Rejection)
    if isinstance(result, Rejection):
        assert isinstance(result.reason, Reason) and result.message
        return
    VALIDATE(result.to_wire())
    again = ingest(result.to_json(), None, NOW_MS + 3_600_000, LIMITS)
    assert isinstance(again, Event), again


@given(value=st.none() | st.binary(max_size=400), hdrs=headers)
@settings(max_examples=400)
def test_arbitrary_bytes_never_raise(value: bytes | None, hdrs: Any) -> None:
    _check(ingest(value, hdrs, NOW_MS, LIMITS))


@given(obj=json_values, hdrs=headers)
@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
def test_arbitrary_json_never_raises(obj: Any, hdrs: Any) -> None:
    _check(ingest(orjson.dumps(obj), hdrs, NOW_MS, LIMITS))


@given(obj=shaped, hdrs=mostly(st.none(), headers))
@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
def test_shaped_objects_yield_one_valid_answer(obj: dict[str, Any], hdrs: Any) -> None:
    _check(ingest(orjson.dumps(obj), hdrs, NOW_MS, LIMITS))


@given(
    user=st.text(min_size=1, max_size=50).filter(lambda u: u.strip() and u[0] != "\x00"),
    event_type=st.text(min_size=1, max_size=50),
    ts=st.integers(min_value=100_000_000_000, max_value=NOW_MS),
    props=st.none() | st.dictionaries(st.text(max_size=10), json_values, max_size=5),
)
@settings(max_examples=300)
def test_valid_canonical_events_are_accepted(
    user: str, event_type: str, ts: int, props: Any
) -> None:
    payload = {
        "event_id": "e-1",
        "user_id": user,
        "event_type": event_type,
        "timestamp": ts,
        "properties": props,
    }
    result = ingest(orjson.dumps(payload), None, NOW_MS, LIMITS)
    assert isinstance(result, Event), result
    assert (result.user_id, result.timestamp_ms, result.properties) == (user, ts, props)
    _check(result)


def test_deeply_nested_json_is_rejected() -> None:
    for depth in (65, 1_000, 1_025, 5_000, 100_000):
        value = b"[" * depth + b"]" * depth
        result = ingest(value, None, NOW_MS, limits_from(10_000_000, 600.0, [1]))
        assert isinstance(result, Rejection) and result.reason is Reason.INVALID_JSON, depth
        wrapped = b'{"event_id":"e","user_id":"u","event_type":"t","timestamp":1714564800000,'
        wrapped += b'"properties":{"a":' + b'{"b":' * depth + b"1" + b"}" * depth + b"}}"
        result = ingest(wrapped, None, NOW_MS, limits_from(10_000_000, 600.0, [1]))
        assert isinstance(result, Rejection) and result.reason is Reason.INVALID_JSON, depth


def test_brackets_in_strings_and_flat_containers_are_not_nesting() -> None:
    value = b'{"event_id":"e","user_id":"u","event_type":"t","timestamp":1714564800000,'
    value += b'"properties":{"note":"' + b"{[" * 200 + b'","tags":[1,2],"more":{"a":"b"}}}'
    result = ingest(value, None, NOW_MS, LIMITS)
    assert isinstance(result, Event), result
    assert result.properties is not None and result.properties["note"] == "{[" * 200


def test_nesting_up_to_the_limit_is_accepted_and_serialisable() -> None:
    depth = 62  # + the event object and properties = 64 levels
    value = b'{"event_id":"e","user_id":"u","event_type":"t","timestamp":1714564800000,'
    value += b'"properties":{"a":' + b"[" * depth + b"]" * depth + b"}}"
    result = ingest(value, None, NOW_MS, LIMITS)
    assert isinstance(result, Event), result
    assert orjson.loads(result.to_json())["properties"]["a"]


def test_huge_json_is_rejected_before_decoding() -> None:
    big = {
        "event_id": "e",
        "user_id": "u",
        "event_type": "t",
        "timestamp": 1_714_564_800_000,
        "properties": {"blob": "x" * 70_000},
    }
    result = ingest(orjson.dumps(big), None, NOW_MS, LIMITS)
    assert isinstance(result, Rejection) and result.reason is Reason.TOO_LARGE
    garbage = b"\xff" * 70_000
    result = ingest(garbage, None, NOW_MS, LIMITS)
    assert isinstance(result, Rejection) and result.reason is Reason.TOO_LARGE


FIRST_MS, LAST_MS = 100_000_000_000, 253_402_300_799_999  # the rule's bounds, written out here


@given(
    ts=st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.sampled_from([FIRST_MS - 1, FIRST_MS, LAST_MS, LAST_MS + 1])
)
@settings(max_examples=300)
def test_an_epoch_millisecond_timestamp_is_taken_as_is_within_the_bounds_only(
    ts: int | bool,
) -> None:
    payload = {"event_id": "e-1", "user_id": "u", "event_type": "t", "timestamp": ts}
    result = ingest(orjson.dumps(payload), None, LAST_MS + 1, LIMITS)
    if type(ts) is int and FIRST_MS <= ts <= LAST_MS:
        assert isinstance(result, Event), result
        assert result.timestamp_ms == ts
    else:
        assert isinstance(result, Rejection), result
        assert result.reason is Reason.INVALID_TIMESTAMP, result


def test_a_user_id_starting_with_nul_is_dead_lettered_it_would_name_a_reserved_key() -> None:
    for user in ("\x00meta", "\x00returns", "\x00returns/s0,1,0,20400", "\x00"):
        payload = {"event_id": "e", "user_id": user, "event_type": "t", "timestamp": NOW_MS}
        result = ingest(orjson.dumps(payload), None, NOW_MS, LIMITS)
        assert isinstance(result, Rejection), user
        assert result.reason is Reason.SCHEMA_VIOLATION, result
    inside = {"event_id": "e", "user_id": "a\x00b", "event_type": "t", "timestamp": NOW_MS}
    assert isinstance(ingest(orjson.dumps(inside), None, NOW_MS, LIMITS), Event)
