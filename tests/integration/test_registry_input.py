"""Avro and Protobuf input through a real Schema Registry (Apicurio, started by the fixture) and
real Kafka: each user's events are published three times, as JSON, as Avro and as Protobuf (to
three users), and the worker must fold the three alike; a value framed with a schema id the
registry does not know, and one its schema cannot read, are dead-lettered with their reasons.

The producers are confluent-kafka's own serializers, as an upstream service would use them;
the Protobuf message class is built from a descriptor here, as ``protoc`` would generate it."""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.schema_registry.protobuf import ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.message_factory import GetMessageClass

from schemas.timestamps import iso_ms
from streams.testbed.brokers.registry import SchemaRegistry
from tests.integration.conftest import BrokerHandle
from tests.integration.test_ingest_flow import read_all
from tests.integration.workers import running_worker, wait_metric, worker_env

pytestmark = pytest.mark.integration
USERS = 5
HOUR_MS = 3_600_000
FORMATS = ("json", "avro", "protobuf")

AVRO_SCHEMA = json.dumps(
    {
        "type": "record",
        "name": "UserEvent",
        "namespace": "engagement.test",
        "fields": [
            {"name": "event_id", "type": "string"},
            {"name": "user_id", "type": "string"},
            {"name": "event_type", "type": "string"},
            {"name": "timestamp", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {"name": "channel", "type": ["null", "string"], "default": None},
            {"name": "platform", "type": ["null", "string"], "default": None},
            {"name": "properties", "type": {"type": "map", "values": "string"}},
        ],
    }
)


def protobuf_class() -> Any:
    """``engagement.test.UserEvent`` (int64 epoch-ms timestamp, map<string, string>)."""
    proto = descriptor_pb2.FileDescriptorProto(
        name="user_event.proto", package="engagement.test", syntax="proto3"
    )
    message = proto.message_type.add(name="UserEvent")
    for number, (name, kind) in enumerate(
        [("event_id", 9), ("user_id", 9), ("event_type", 9), ("timestamp", 3), ("channel", 9)],
        start=1,
    ):
        message.field.add(name=name, number=number, type=kind, label=1)
    entry = message.nested_type.add(name="PropertiesEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, type=9, label=1)
    entry.field.add(name="value", number=2, type=9, label=1)
    message.field.add(
        name="properties",
        number=6,
        type=11,
        label=3,
        type_name=".engagement.test.UserEvent.PropertiesEntry",
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return GetMessageClass(pool.FindMessageTypeByName("engagement.test.UserEvent"))


def history(user: int, now_ms: int) -> list[dict[str, Any]]:
    """One user's events: a few active days over the last week (the same for each twin)."""
    kinds = ["session_start", "page_view", "purchase", "session_start"]
    return [
        {
            "event_id": f"e{user}-{n}",
            "event_type": kind,
            "timestamp_ms": now_ms - (7 - n - user % 2) * 24 * HOUR_MS - user * 60_000,
            "channel": "email",
            "properties": {"order": f"o{user}-{n}"},
        }
        for n, kind in enumerate(kinds)
    ]


def user_of(fmt: str, user: int) -> str:
    return f"{fmt}-user-{user}"


def encode(fmt: str, user: int, event: dict[str, Any], serializers: dict[str, Any]) -> bytes:
    fields = {
        "event_id": f"{fmt}-{event['event_id']}",
        "user_id": user_of(fmt, user),
        "event_type": event["event_type"],
        "channel": event["channel"],
        "properties": event["properties"],
    }
    if fmt == "json":
        return orjson.dumps({**fields, "timestamp": iso_ms(event["timestamp_ms"])})
    if fmt == "avro":
        return bytes(serializers["avro"]({**fields, "timestamp": event["timestamp_ms"]}))
    message = serializers["protobuf_class"](**fields, timestamp=event["timestamp_ms"])
    return bytes(serializers["protobuf"](message))


def user_view(base_url: str, user_id: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{base_url}/users/{user_id}", timeout=10) as answer:
        view: dict[str, Any] = json.loads(answer.read())
    return view


def test_avro_and_protobuf_fold_like_json_and_bad_ids_are_dead_lettered(
    kafka_broker: BrokerHandle, schema_registry: SchemaRegistry, unique_name
) -> None:
    name = unique_name("registry")
    env = worker_env(kafka_broker, name, ENGAGEMENT_SCHEMA_REGISTRY_URL=schema_registry.url)
    topic = env["ENGAGEMENT_INPUT_TOPIC"]
    client = SchemaRegistryClient({"url": schema_registry.url})
    ctx = SerializationContext(topic, MessageField.VALUE)
    cls = protobuf_class()
    avro = AvroSerializer(client, AVRO_SCHEMA)
    protobuf = ProtobufSerializer(cls, client, {"use.deprecated.format": False})
    serializers = {
        "avro": lambda record: avro(record, ctx),
        "protobuf": lambda message: protobuf(message, ctx),
        "protobuf_class": cls,
    }
    now_ms = int(time.time() * 1000)
    records: list[tuple[bytes, bytes]] = []
    for user in range(USERS):
        for event in history(user, now_ms):
            for fmt in FORMATS:
                key = user_of(fmt, user).encode()
                records.append((key, encode(fmt, user, event, serializers)))
    valid = len(records)
    an_avro_value = records[1][1]
    assert an_avro_value[0] == 0  # the wire format: magic byte, then the schema id
    unknown_id = b"\x00" + (2**31 - 7).to_bytes(4, "big") + an_avro_value[5:]
    truncated = an_avro_value[:5] + b"\x80"  # a string length with no bytes behind it
    records += [(b"bad-id", unknown_id), (b"bad-body", truncated)]

    with running_worker(env) as worker:
        producer = Producer({"bootstrap.servers": kafka_broker.bootstrap})
        for key, value in records:
            producer.produce(topic, key=key, value=value, headers=[("x-trace", key)])
        assert producer.flush(30) == 0
        wait_metric([worker], "engagement_events_consumed_total", len(records), timeout=90)
        wait_metric([worker], "engagement_events_folded_total", valid, timeout=90)
        metrics = worker.metrics()
        assert metrics['engagement_events_invalid_total{reason="unknown_schema_id"}'] == 1
        assert metrics['engagement_events_invalid_total{reason="undecodable_payload"}'] == 1
        views = {
            (fmt, user): user_view(worker.base_url, user_of(fmt, user))
            for fmt in FORMATS
            for user in range(USERS)
        }

    for user in range(USERS):
        twin = views[("json", user)]
        assert twin["active_days"] >= 3 and twin["channel"] == "email"
        for fmt in ("avro", "protobuf"):
            view = views[(fmt, user)]
            assert view["user_id"] == user_of(fmt, user)
            for field in twin.keys() - {"user_id", "p_alive"}:
                assert view[field] == twin[field], (fmt, user, field)
            assert view["p_alive"] == pytest.approx(twin["p_alive"], abs=1e-3)

    dead = {
        record.key(): dict(record.headers() or [])
        for record in read_all(kafka_broker.bootstrap, f"{name}.dead_letter", 4)
    }
    assert set(dead) == {b"bad-id", b"bad-body"}
    assert dead[b"bad-id"]["engagement.error.reason"] == b"unknown_schema_id"
    assert dead[b"bad-body"]["engagement.error.reason"] == b"undecodable_payload"
    assert dead[b"bad-id"]["x-trace"] == b"bad-id"  # the original headers are kept
