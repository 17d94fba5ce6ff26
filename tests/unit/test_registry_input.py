"""Schema Registry input without a registry: the wire-format framing, the format of a
registered schema, decoded records -> JSON types, the reason codes through ``ingest`` and the
setting. The registry itself is exercised in tests/integration/test_registry_input.py."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import orjson
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.message_factory import GetMessageClass

from agents.logic.ingest import Reason, Rejection, ingest, limits_from
from agents.logic.wire import AVRO, PROTOBUF, framed, jsonable, schema_format, schema_id
from schemas.errors import RegistryUnavailable, SettingsError
from schemas.records import Event
from streams.settings import Settings
from streams.testbed.brokers import free_port
from streams.worker.registry_input import RegistryDecoder, _message_dict

LIMITS = limits_from(65_536, 600.0, [1])
NOW_MS = 1_714_564_860_000  # 2024-05-01T12:01:00Z
RECORD = {
    "event_id": "e-1",
    "user_id": "u-1",
    "event_type": "purchase",
    "timestamp": "2024-05-01T12:00:00+00:00",
}


def frame(sid: int, body: bytes = b"\x02") -> bytes:
    return b"\x00" + sid.to_bytes(4, "big") + body


def test_framing_is_the_magic_byte_and_a_big_endian_schema_id() -> None:
    assert framed(frame(1)) and schema_id(frame(1)) == 1
    assert schema_id(frame(0x01020304)) == 0x01020304
    assert framed(b"\x00\x00\x00\x00\x07")  # header only: an empty Avro record is possible
    for not_framed in (None, b"", b"\x00\x00\x01", b'{"user_id": "u"}', b"\x01\x00\x00\x00\x01"):
        assert not framed(not_framed)


@pytest.mark.parametrize(
    ("schema_type", "text", "expected"),
    [
        ("AVRO", '{"type": "record", "name": "E", "fields": []}', AVRO),
        (None, '  ["null", "string"]', AVRO),
        (None, '"string"', AVRO),
        ("PROTOBUF", 'syntax = "proto3";', PROTOBUF),
        # some compatible registries omit schemaType for every type: the text decides
        ("AVRO", 'syntax = "proto3"; message E {}', PROTOBUF),
        ("AVRO", "CgdlLnByb3RvEgF0", PROTOBUF),  # base64 FileDescriptorProto
    ],
)
def test_schema_format(schema_type: str | None, text: str, expected: str) -> None:
    assert schema_format(schema_type, text) == expected


def test_json_schema_frames_are_undecodable() -> None:
    result = schema_format("JSON", '{"type": "object"}')
    assert isinstance(result, Rejection) and result.reason is Reason.UNDECODABLE_PAYLOAD


def test_jsonable_turns_avro_logical_types_into_json_types() -> None:
    moment = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    decoded = {
        "t": moment,
        "naive": datetime(2024, 5, 1, 12, 0),
        "d": date(2024, 5, 1),
        "n": Decimal("9.50"),
        "id": uuid.UUID(int=1),
        "raw": b"\x00\xff",
        "nested": [{"t": moment}],
    }
    result = jsonable(decoded)
    assert result == {
        "t": "2024-05-01T12:00:00+00:00",
        "naive": "2024-05-01T12:00:00Z",
        "d": "2024-05-01",
        "n": "9.50",
        "id": "00000000-0000-0000-0000-000000000001",
        "raw": "AP8=",
        "nested": [{"t": "2024-05-01T12:00:00+00:00"}],
    }
    orjson.dumps(result)


def test_a_decoded_record_is_ingested_like_its_json_twin() -> None:
    from_json = ingest(orjson.dumps(RECORD), None, NOW_MS, LIMITS)
    from_registry = ingest(frame(3), None, NOW_MS, LIMITS, lambda value: dict(RECORD))
    assert isinstance(from_registry, Event)
    assert from_registry == from_json


def test_decoded_records_meet_the_same_contract() -> None:
    def decoder(record: Any) -> Any:
        return lambda value: record

    no_user = ingest(frame(3), None, NOW_MS, LIMITS, decoder({**RECORD, "user_id": " "}))
    assert isinstance(no_user, Rejection) and no_user.reason is Reason.MISSING_USER_ID
    scalar = ingest(frame(3), None, NOW_MS, LIMITS, decoder("just a string"))
    assert isinstance(scalar, Rejection) and scalar.reason is Reason.UNKNOWN_SHAPE


def test_decoder_rejections_pass_through_and_json_bypasses_the_decoder() -> None:
    unknown = Rejection(Reason.UNKNOWN_SCHEMA_ID, "the Schema Registry has no schema id 9")
    assert ingest(frame(9), None, NOW_MS, LIMITS, lambda value: unknown) is unknown

    def never(value: bytes) -> Any:
        raise AssertionError("JSON went to the registry decoder")

    assert isinstance(ingest(orjson.dumps(RECORD), None, NOW_MS, LIMITS, never), Event)


def test_without_a_registry_wire_format_is_unknown_schema_id() -> None:
    result = ingest(frame(3), None, NOW_MS, LIMITS)
    assert isinstance(result, Rejection) and result.reason is Reason.UNKNOWN_SCHEMA_ID
    assert "ENGAGEMENT_SCHEMA_REGISTRY_URL" in result.message


def test_too_large_is_checked_before_decoding() -> None:
    big = frame(3, b"\x00" * 70_000)
    result = ingest(big, None, NOW_MS, LIMITS, lambda value: dict(RECORD))
    assert isinstance(result, Rejection) and result.reason is Reason.TOO_LARGE


def test_protobuf_messages_keep_64_bit_integers_as_integers() -> None:
    proto = descriptor_pb2.FileDescriptorProto(name="e.proto", package="t", syntax="proto3")
    message = proto.message_type.add(name="E")
    message.field.add(name="user_id", number=1, type=9, label=1)  # string
    message.field.add(name="timestamp", number=2, type=3, label=1)  # int64
    message.field.add(name="schema_version", number=3, type=5, label=1)  # int32
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    cls = GetMessageClass(pool.FindMessageTypeByName("t.E"))
    assert _message_dict(cls(user_id="u", timestamp=NOW_MS, schema_version=1)) == {
        "user_id": "u",
        "timestamp": NOW_MS,
        "schema_version": 1,
    }


def test_registry_url_setting() -> None:
    assert Settings.from_env({}).schema_registry_url == ""
    env = {"ENGAGEMENT_SCHEMA_REGISTRY_URL": "http://registry:8081/apis/ccompat/v6/"}
    assert Settings.from_env(env).schema_registry_url == "http://registry:8081/apis/ccompat/v6"
    with pytest.raises(SettingsError, match="ENGAGEMENT_SCHEMA_REGISTRY_URL"):
        Settings.from_env({"ENGAGEMENT_SCHEMA_REGISTRY_URL": "registry:8081"})
    with pytest.raises(SettingsError, match="ENGAGEMENT_SCHEMA_REGISTRY_URL"):
        Settings.from_env({**env, "ENGAGEMENT_INPUT_KEYED_BY_USER": "true"})


def test_a_registry_that_does_not_answer_is_not_the_messages_fault() -> None:
    decoder = RegistryDecoder(f"http://127.0.0.1:{free_port()}", timeout_s=2.0)
    with pytest.raises(RegistryUnavailable, match="schema id 3"):
        decoder(frame(3))
