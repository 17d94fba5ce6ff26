"""Issue 15 on Apache Kafka: records Kafka refuses for their size are reduced or stop the
worker by name, and a record limit the topics cannot take stops start-up naming the variable."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from typing import cast

import pytest
from confluent_kafka import Consumer, Message, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource  # type: ignore[attr-defined]

from agents.logic.ingest import Reason, Rejection, dead_letter_headers
from schemas.errors import DeliveryFailed, SettingsError
from streams.kafka import record_headroom
from streams.settings import Settings
from streams.topics import Topics
from streams.worker.delivery import Deliverer
from streams.worker.record_limits import check_record_limit
from tests.integration.conftest import BrokerHandle, create_topics
from tests.integration.workers import worker_env

pytestmark = pytest.mark.integration
SIZE = "engagement.error.original_bytes"
TOO_LARGE = Rejection(Reason.TOO_LARGE, "message value is big")


def read(bootstrap: str, topic: str, count: int, timeout: float = 30.0) -> list[Message]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"r-{time.time_ns()}"})
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        records: list[Message] = []
        deadline = time.monotonic() + timeout
        while len(records) < count and time.monotonic() < deadline:
            records += [m for m in consumer.consume(10, timeout=0.5) if m.error() is None]
        return records
    finally:
        consumer.close()


def headers_of(message: Message) -> dict[str, bytes]:
    pairs = cast(list[tuple[str, bytes | None]], message.headers() or [])
    return {name: value or b"" for name, value in pairs}


def settings_for(broker: BrokerHandle, name: str, **env: str) -> Settings:
    return Settings.from_env(worker_env(broker, name, ENGAGEMENT_PARTITIONS="1", **env))


def test_a_dead_letter_the_topic_refuses_is_delivered_as_its_digest(
    kafka_broker: BrokerHandle, unique_name
) -> None:
    settings = settings_for(kafka_broker, unique_name("dl"))
    topic = Topics.of(settings).dead_letter
    create_topics(kafka_broker.bootstrap, {topic: 1}, config={"max.message.bytes": "5000"})
    headers = dead_letter_headers([("trace", b"t")], TOO_LARGE, "user.events", 3, 42, 1)
    deliverer = Deliverer(settings)
    deliverer.produce(topic, b"key", os.urandom(20_000), -1, headers)  # refused by the broker
    deliverer.produce(topic, b"key", b"w" * 1_039_000, -1, headers)  # by the producer
    asyncio.run(deliverer.flush("dead_letter"))
    deliverer.close()
    records = read(kafka_broker.bootstrap, topic, 2)
    assert [(m.key(), m.value()) for m in records] == [(None, None)] * 2
    found = sorted(
        (headers_of(m) for m in records),
        key=lambda h: int(h[SIZE]),
    )
    assert [int(h[SIZE]) for h in found] == [20_000 + 9, 1_039_000 + 9]  # + key, header
    for h in found:
        assert h["engagement.error.reduced"] == b"value_digest,key_dropped,headers_dropped"
        assert (h["engagement.error.partition"], h["engagement.error.offset"]) == (b"3", b"42")
        assert len(h["engagement.error.value_sha256"]) == 64


def test_a_by_user_record_the_topic_refuses_stops_delivery_naming_it(
    kafka_broker: BrokerHandle, unique_name
) -> None:
    settings = settings_for(kafka_broker, unique_name("bu"))
    topic = Topics.of(settings).by_user
    create_topics(kafka_broker.bootstrap, {topic: 1}, config={"max.message.bytes": "5000"})
    deliverer = Deliverer(settings)
    deliverer.produce(topic, b"u", os.urandom(20_000), 0)
    with pytest.raises(DeliveryFailed) as info:
        asyncio.run(deliverer.flush("by_user"))
    deliverer.close()
    assert f"record for {topic} partition 0" in str(info.value)


def test_a_changelog_record_the_producer_refuses_in_a_group_stops_delivery_naming_it(
    kafka_broker: BrokerHandle, unique_name
) -> None:
    """A group's changelog goes out through ``produce_all``: a record refused at once takes
    ``produce``'s path (a kept failure: fail-stop naming it), and the others are delivered."""
    name = unique_name("cl")
    settings = settings_for(kafka_broker, name)
    topic = f"{name}-changelog"
    create_topics(kafka_broker.bootstrap, {topic: 1})
    deliverer = Deliverer(settings)
    too_large = b"s" * 1_039_000  # over the producer's message.max.bytes
    deliverer.produce_all(topic, [(0, b"u1", b"one"), (0, b"u2", too_large), (0, b"u3", None)])
    with pytest.raises(DeliveryFailed) as info:
        asyncio.run(deliverer.flush("changelog"))
    deliverer.close()
    assert f"record for {topic} partition 0" in str(info.value)
    assert [(m.key(), m.value()) for m in read(kafka_broker.bootstrap, topic, 2)] == [
        (b"u1", b"one"),
        (b"u3", None),
    ]


def test_a_record_limit_the_by_user_topic_cannot_take_stops_start_up(
    kafka_broker: BrokerHandle, unique_name
) -> None:
    name = unique_name("limit")
    env = worker_env(kafka_broker, name, ENGAGEMENT_PARTITIONS="1")
    settings = Settings.from_env(env)
    topic = Topics.of(settings).by_user
    create_topics(kafka_broker.bootstrap, {topic: 1}, config={"max.message.bytes": "200000"})
    with pytest.raises(SettingsError) as info:
        check_record_limit(settings)
    assert info.value.variable == "ENGAGEMENT_RECORD_MAX_BYTES"
    assert f"max.message.bytes of topic {topic} takes (200000)" in str(info.value)
    check_record_limit(settings.replace(record_max_bytes=150_000))  # fits: no error
    started = subprocess.run(
        [sys.executable, "-m", "streams.cli", "worker"],
        env={**env, "PATH": "/usr/bin:/bin", "PYTHONPATH": ":".join(sys.path)},
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert started.returncode != 0
    assert b"ENGAGEMENT_RECORD_MAX_BYTES" in started.stderr


def test_records_under_the_limit_are_delivered_to_a_topic_that_just_takes_the_limit(
    kafka_broker: BrokerHandle, unique_name
) -> None:
    """librdkafka puts many records in one batch (up to batch.size, 1 MB by default), and the
    broker holds the whole batch to the topic's max.message.bytes: batches must stay under the
    limit that the start-up check compared with the topic."""
    settings = settings_for(kafka_broker, unique_name("bt"), ENGAGEMENT_RECORD_MAX_BYTES="100000")
    topic = Topics.of(settings).by_user
    limit = 100_000 + record_headroom(100_000)
    create_topics(kafka_broker.bootstrap, {topic: 1}, config={"max.message.bytes": str(limit)})
    check_record_limit(settings)
    deliverer = Deliverer(settings)
    for _ in range(10):
        deliverer.produce(topic, b"u", os.urandom(90_000), 0)
    offsets = asyncio.run(deliverer.flush("by_user"))
    deliverer.close()
    assert offsets == {(topic, 0): 9}


def test_a_dead_letter_held_by_an_unwritable_topic_arrives_in_full_once_it_is_fixed(
    kafka_broker: BrokerHandle, unique_name
) -> None:
    """max.message.bytes=1: neither the dead letter nor its digest fits. Delivery holds the
    record (retrying the full one), and the topic's fix brings the original, not the digest."""
    settings = settings_for(kafka_broker, unique_name("hold"))
    topic = Topics.of(settings).dead_letter
    create_topics(kafka_broker.bootstrap, {topic: 1}, config={"max.message.bytes": "1"})
    headers = dead_letter_headers(None, TOO_LARGE, "user.events", 0, 7, 1)
    value = os.urandom(3000)
    deliverer = Deliverer(settings, max_backoff_s=0.5)

    async def hold_then_fix() -> dict[tuple[str, int], int]:
        deliverer.produce(topic, b"key", value, -1, headers)
        flush = asyncio.ensure_future(deliverer.flush("dead_letter"))
        await asyncio.sleep(4)
        assert not flush.done(), "delivered to a topic that takes nothing"
        admin = AdminClient({"bootstrap.servers": kafka_broker.bootstrap})
        fix = ConfigResource("topic", topic, set_config={"max.message.bytes": "1048588"})
        for future in admin.alter_configs([fix]).values():
            future.result(30)
        return await asyncio.wait_for(flush, 60)

    offsets = asyncio.run(hold_then_fix())
    deliverer.close()
    assert offsets == {(topic, 0): 0}
    (record,) = read(kafka_broker.bootstrap, topic, 1)
    assert (record.key(), record.value()) == (b"key", value)
    assert "engagement.error.reduced" not in headers_of(record)
