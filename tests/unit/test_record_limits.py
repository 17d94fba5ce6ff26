"""Issue 15, ingest side: no record ingest writes is larger than Kafka takes (pure parts).

Dead letters of oversized input are reduced and say so; by_user batches are split by encoded
bytes; the start-up check names the variable; produce errors are told apart by kind.
"""

from __future__ import annotations

import base64
import hashlib

import fastjsonschema
import orjson
import pytest
from confluent_kafka import KafkaError

from agents.logic.dead_letters import (
    KEEP_BYTES,
    MIN_RECORD_BYTES,
    digest_dead_letter,
    fit_dead_letter,
    is_reduced_to_digest,
    record_bytes,
)
from agents.logic.ingest import Reason, dead_letter_headers, limits_from
from agents.logic.routing import RawRecord, Router
from schemas import load_schema
from schemas.errors import SettingsError
from schemas.records import Event
from streams.kafka import record_headroom
from streams.settings import Settings
from streams.worker.codecs import decode_batch, encode_batch, encode_batches, largest_row_batch
from streams.worker.delivery import Failed, failure_kind
from streams.worker.ingest import MAX_BATCH_ROWS
from streams.worker.record_limits import record_limit_problem

NOW = 1_767_225_600_000
CAP = 512 * 1024
LIMITS = limits_from(65_536, 600, [1], CAP)
SCHEMA = load_schema("user_event")["properties"]
WIDE = "\U0001f600"  # 4 bytes in UTF-8, one character for the schema's maxLength


def error_headers(headers: list[tuple[str, bytes | None]]) -> dict[str, str]:
    prefix = "engagement.error."
    return {n.removeprefix(prefix): (v or b"").decode() for n, v in headers if n.startswith(prefix)}


def route_one(value: bytes, headers: list[tuple[str, bytes | None]] | None = None):
    routed = Router(4, LIMITS).route([RawRecord("user.events", 2, 41, b"k", value, headers)], NOW)
    assert not routed.batches and len(routed.dead) == 1
    return routed.dead[0]


# -- dead letters within the broker's limits ---------------------------------------------------


def test_a_1039000_byte_input_is_dead_lettered_truncated_with_size_digest_and_origin() -> None:
    value = orjson.dumps({"event_id": "e", "user_id": "u", "blob": "é" * 519_480})
    assert len(value) >= 1_039_000
    dead = route_one(value, [("traceparent", b"00-abc")])
    assert dead.rejection.reason is Reason.TOO_LARGE
    assert record_bytes(dead.key, dead.value, dead.headers) <= CAP
    assert dead.value is not None and value.startswith(dead.value)
    assert len(dead.value) <= LIMITS.max_message_bytes
    dead.value.decode()  # cut at a character boundary
    error = error_headers(dead.headers)
    assert error["reason"] == "too_large"
    assert (error["topic"], error["partition"], error["offset"]) == ("user.events", "2", "41")
    assert error["reduced"] == "value_truncated"
    assert int(error["original_bytes"]) == record_bytes(b"k", value, [("traceparent", b"00-abc")])
    assert error["value_sha256"] == hashlib.sha256(value).hexdigest()
    assert dead.key == b"k" and ("traceparent", b"00-abc") in dead.headers


def test_a_dead_letter_that_fits_is_kept_verbatim_without_reduction_headers() -> None:
    value = b'{"event_id": "truncated'
    dead = route_one(value, [("a", b"1")])
    assert dead.value == value and dead.key == b"k"
    assert "reduced" not in error_headers(dead.headers)


def test_huge_headers_and_key_are_dropped_and_named() -> None:
    headers = [("h", b"x" * (KEEP_BYTES + 1))]
    original = dead_letter_headers(
        headers, route_one(b"[").rejection, "user.events", 0, 7, NOW
    )  # fmt: skip
    key, value, out = fit_dead_letter(b"K" * (CAP // 2), b"v" * CAP, original, CAP, 100)
    assert key is None and value == b"v" * 100
    assert all(n.startswith("engagement.error.") for n, _ in out)
    assert error_headers(out)["reduced"] == "value_truncated,key_dropped,headers_dropped"
    assert record_bytes(key, value, out) <= CAP


@pytest.mark.parametrize("cap", [MIN_RECORD_BYTES, CAP])
def test_any_reduced_dead_letter_fits_its_limit(cap: int) -> None:
    big = dead_letter_headers(
        [("h", b"y" * KEEP_BYTES)], route_one(b"[").rejection, "user.events", 0, 7, NOW
    )
    key, value, out = fit_dead_letter(b"k" * KEEP_BYTES, b"\xf0\x9f\x98\x80" * cap, big, cap, cap)
    assert record_bytes(key, value, out) <= cap
    assert key is not None and value  # both small enough to keep: only the value was cut


def test_the_digest_of_a_reduced_dead_letter_keeps_the_original_size_and_digest() -> None:
    value = b"z" * 2_000_000
    dead = route_one(value)
    key, reduced_value, headers = digest_dead_letter(dead.key, dead.value, dead.headers)
    error = error_headers(headers)
    assert key is None and reduced_value is None
    assert error["reduced"] == "value_digest,key_dropped"
    assert int(error["original_bytes"]) == len(value) + 1  # + the key
    assert error["value_sha256"] == hashlib.sha256(value).hexdigest()
    assert (error["topic"], error["offset"], error["reason"]) == ("user.events", "41", "too_large")
    assert list(error).count("reduced") == 1
    assert record_bytes(key, reduced_value, headers) < 2048
    assert is_reduced_to_digest(headers) and not is_reduced_to_digest(dead.headers)


def rendered(key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes | None]]):
    """A dead letter in the JSON rendering dead_letter.schema.json describes."""

    def b64(raw: bytes | None) -> str | None:
        return None if raw is None else base64.b64encode(raw).decode()

    ints = {"partition", "offset", "timestamp", "original_bytes"}
    error = {n: int(v) if n in ints else v for n, v in error_headers(headers).items()}
    pairs = [[n, b64(v)] for n, v in headers]
    return {"key": b64(key), "value": b64(value), "headers": pairs, "error": error}


def test_reduced_dead_letters_are_described_by_the_dead_letter_schema() -> None:
    validate = fastjsonschema.compile(load_schema("dead_letter"))
    truncated = route_one(b"{" + b"x" * 2_000_000, [("h", b"y" * (KEEP_BYTES + 1))])
    validate(rendered(truncated.key, truncated.value, truncated.headers))
    validate(rendered(*digest_dead_letter(truncated.key, truncated.value, truncated.headers)))
    plain = route_one(b"[")
    validate(rendered(plain.key, plain.value, plain.headers))
    assert error_headers(truncated.headers)["reduced"] == "value_truncated,headers_dropped"


# -- by_user batches split by bytes ----------------------------------------------------------


def widest_event(i: int, user: str | None = None) -> Event:
    """A valid event whose ids are as long as the schema allows, in 4-byte characters."""
    user = user or WIDE * int(SCHEMA["user_id"]["maxLength"])
    event_id = (f"{i:06d}" + WIDE * 200)[: int(SCHEMA["event_id"]["maxLength"])]
    event_type = WIDE * int(SCHEMA["event_type"]["maxLength"])
    return Event(event_id, user, event_type, NOW - i, WIDE * int(SCHEMA["channel"]["maxLength"]))


def test_500_events_with_the_longest_4_byte_ids_are_split_under_the_limit() -> None:
    events = [widest_event(i) for i in range(500)]
    assert len(encode_batch(NOW, events, "src")) > 1_000_000  # what used to be one record
    records = encode_batches(NOW, events, "src", CAP, MAX_BATCH_ROWS)
    assert len(records) > 1
    assert all(len(key) + len(value) <= CAP for key, value in records)
    rows = [row for _, value in records for row in decode_batch(value)[2]]
    assert [r.event_id for r in rows] == [e.event_id for e in events]  # all, in order
    assert {key for key, _ in records} == {events[0].user_id.encode()}


def test_ordinary_events_stay_one_record_per_500_rows() -> None:
    events = [Event(f"e{i}", f"u{i}", "page_view", NOW, None) for i in range(1200)]
    records = encode_batches(NOW, events, "src", CAP, MAX_BATCH_ROWS)
    assert [len(decode_batch(v)[2]) for _, v in records] == [500, 500, 200]
    assert [k for k, _ in records] == [b"u0", b"u500", b"u1000"]


def test_one_row_of_the_widest_ids_fits_the_smallest_allowed_limit() -> None:
    worst = largest_row_batch()
    assert worst < MIN_RECORD_BYTES // 8
    one = encode_batches(NOW, [widest_event(1)], "f" * 12, MIN_RECORD_BYTES, MAX_BATCH_ROWS)
    assert len(one) == 1 and len(one[0][1]) <= worst
    low = load_schema("user_event")
    assert low["properties"]["user_id"]["maxLength"] == 200  # the bound largest_row_batch uses


# -- the start-up check ----------------------------------------------------------------------


def test_the_default_limit_fits_kafkas_defaults() -> None:
    default = Settings.from_env({}).record_max_bytes
    kafka = {"the producer's message.max.bytes": 1_000_000, "topic by_user": 1_048_588}
    assert record_limit_problem(default, kafka) is None
    assert default + record_headroom(default) < 1_000_000


def test_a_limit_a_topic_cannot_take_is_named() -> None:
    problem = record_limit_problem(600_000, {"max.message.bytes of topic t": 600_500})
    assert problem is not None and "max.message.bytes of topic t" in problem
    assert "600000 bytes" in problem and "(600500)" in problem


@pytest.mark.parametrize("value", ["1000", "2000000", "lots"])
def test_a_limit_out_of_range_names_its_variable(value: str) -> None:
    with pytest.raises(SettingsError) as info:
        Settings.from_env({"ENGAGEMENT_RECORD_MAX_BYTES": value})
    assert info.value.variable == "ENGAGEMENT_RECORD_MAX_BYTES"


# -- produce errors by kind ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (KafkaError.MSG_SIZE_TOO_LARGE, "too_large"),
        (KafkaError.RECORD_LIST_TOO_LARGE, "too_large"),
        (KafkaError.TOPIC_AUTHORIZATION_FAILED, "fatal"),
        (KafkaError.INVALID_RECORD, "fatal"),
        (KafkaError.NOT_ENOUGH_REPLICAS, "retry"),
        (KafkaError._MSG_TIMED_OUT, "retry"),
        (KafkaError.NOT_LEADER_FOR_PARTITION, "retry"),
    ],
)
def test_produce_errors_are_told_apart_by_kind(code: int, kind: str) -> None:
    assert failure_kind(KafkaError(code)) == kind


def test_a_failed_dead_letter_names_the_input_record() -> None:
    dead = route_one(b"x" * 70_000)
    failed = Failed("p.dead_letter", dead.key, dead.value, 0, dead.headers, KafkaError(10))
    text = failed.describe()
    assert "user.events partition 2 offset 41 (too_large)" in text
    other = Failed("p.events.by_user", b"k", b"v", 3, None, KafkaError(10)).describe()
    assert other.startswith("record for p.events.by_user partition 3")
