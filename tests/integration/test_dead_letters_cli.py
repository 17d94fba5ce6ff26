"""``engagement dead-letters`` on Apache Kafka: the listing by reason, and a replay that puts
the chosen dead letters' original key, value and headers on the input topic, byte for byte."""

from __future__ import annotations

import io
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer

from agents.logic.dead_letters import fit_dead_letter
from agents.logic.ingest import error_headers
from streams.settings import Settings
from streams.tools.dead_letters import dead_letters_command
from streams.topics import Topics
from streams.worker.changelog import read_partitions
from tests.integration.conftest import BrokerHandle, create_topics

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

Record = tuple[bytes | None, bytes | None, list[tuple[str, bytes | None]]]


def dead_letter(key: bytes | None, value: bytes | None, reason: str, offset: int) -> Record:
    original: list[tuple[str, bytes | None]] = [("traceparent", b"00-4bf9"), ("empty", None)]
    headers = error_headers(original, reason, "why", "user.events", 0, offset, 1_714_564_801_000)
    return key, value, headers


def produce(bootstrap: str, topic: str, records: list[Record]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for key, value, headers in records:
        pairs: list[tuple[str, str | bytes | None]] = list(headers)
        producer.produce(topic, key=key, value=value, headers=pairs, partition=0)
    assert producer.flush(30) == 0


def read_all(settings: Settings, topic: str) -> list[Any]:
    got: list[Any] = []
    read_partitions(settings, topic, {0: 0}, got.append, timeout=30)
    return got


def test_list_and_replay_chosen_reasons(kafka_broker: BrokerHandle, unique_name) -> None:
    prefix = unique_name("dlq")
    settings = Settings().replace(
        broker=(f"kafka://{kafka_broker.bootstrap}",),
        topic_prefix=prefix,
        app_id=prefix,
        input_topic=f"{prefix}.input",
    )
    topics = Topics.of(settings)
    create_topics(kafka_broker.bootstrap, {topics.dead_letter: 2, settings.input_topic: 1})
    big = b'{"user_id":"u-9","blob":"' + b"x" * 200_000 + b'"}'
    reduced = fit_dead_letter(*dead_letter(b"u-9", big, "invalid_timestamp", 4)[:3], 70_000, 1000)
    records = [
        dead_letter(b"u-1", b'{"user_id":"u-1","timestamp":"soon"}', "invalid_timestamp", 1),
        dead_letter(None, b'{"user_id":"u-2","timestamp":"later"}', "invalid_timestamp", 2),
        dead_letter(b"u-3", b"not json", "invalid_json", 3),
        reduced,
    ]
    produce(kafka_broker.bootstrap, topics.dead_letter, records)

    listing = io.StringIO()
    assert dead_letters_command(settings, reasons=None, replay=False, out=listing) == 0
    text = listing.getvalue()
    assert "4 dead letter(s)" in text
    table = {line.split()[0]: line.split()[1:] for line in text.splitlines()[2:4]}
    assert table == {"invalid_timestamp": ["3", "1"], "invalid_json": ["1", "0"]}

    as_json = io.StringIO()
    assert (
        dead_letters_command(
            settings, reasons=["invalid_json"], replay=False, as_json=True, out=as_json
        )
        == 0
    )
    [line] = as_json.getvalue().splitlines()
    assert orjson.loads(line)["error"]["reason"] == "invalid_json"

    report = io.StringIO()
    status = dead_letters_command(settings, reasons=["invalid_timestamp"], replay=True, out=report)
    assert status == 0, report.getvalue()
    assert "replayed 2 of 3 dead letter(s)" in report.getvalue()
    assert "1 reduced" in report.getvalue()

    replayed = read_all(settings, settings.input_topic)
    got = sorted(((m.key(), m.value(), m.headers()) for m in replayed), key=lambda r: r[1] or b"")
    assert got == [
        (b"u-1", records[0][1], [("traceparent", b"00-4bf9"), ("empty", None)]),
        (None, records[1][1], [("traceparent", b"00-4bf9"), ("empty", None)]),
    ]
