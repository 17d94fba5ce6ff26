"""Ingest on each broker: everything valid is re-keyed, everything else dead-lettered, nothing
lost, and the input offsets are committed to the end."""

from __future__ import annotations

import time
from collections import Counter

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from agents.logic.ingest import Reason
from agents.logic.partitioning import partition_for
from streams.worker.codecs import decode_batch
from tests.integration.conftest import BrokerHandle
from tests.integration.mixed_input import NEEDS_REGISTRY, mixed_stream
from tests.integration.workers import running_worker, wait_metric, worker_env

pytestmark = pytest.mark.integration
TOTAL = 20_000


def read_all(bootstrap: str, topic: str, partitions: int, idle_s: float = 3.0):
    """Every record of ``topic`` from the beginning until nothing new arrives for ``idle_s``.

    Not bounded by the broker's high watermarks: Tansu 0.6 reports a high watermark of 1 for
    partitions that hold hundreds of records (see the closing notes), so the end is found by
    reading."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{time.time_ns()}",
            "enable.auto.commit": False,
        }
    )
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        records, idle_since = [], time.monotonic()
        while time.monotonic() - idle_since < idle_s:
            batch = [m for m in consumer.consume(500, timeout=0.5) if not m.error()]
            if batch:
                records.extend(batch)
                idle_since = time.monotonic()
        return records
    finally:
        consumer.close()


def test_mixed_input_is_rekeyed_or_dead_lettered(broker: BrokerHandle, unique_name) -> None:
    name = unique_name("ingest")
    env = worker_env(broker, name)
    input_topic, partitions = env["ENGAGEMENT_INPUT_TOPIC"], 4
    messages = mixed_stream(TOTAL, 0.05, seed=3, now_ms=int(time.time() * 1000))
    with running_worker(env) as worker:
        producer = Producer(
            {
                "bootstrap.servers": broker.bootstrap,
                "partitioner": "murmur2_random",
                "message.max.bytes": 2_000_000,
            }
        )
        for m in messages:
            producer.produce(input_topic, key=m.key, value=m.value, headers=m.headers or None)
        assert producer.flush(60) == 0
        wait_metric([worker], "engagement_events_consumed_total", TOTAL, timeout=120)
        metrics = worker.metrics()

    bad = [m for m in messages if m.reason is not None]
    good = [m for m in messages if m.reason is None]
    # counts balance: in = valid + dead-lettered, per reason too
    valid_total = sum(
        v for k, v in metrics.items() if k.startswith("engagement_events_valid_total")
    )
    assert valid_total == len(good)
    assert metrics["engagement_events_dead_lettered_total"] == len(bad)
    expected_reasons = Counter(m.reason.value for m in bad if m.reason is not None)
    assert set(expected_reasons) == {r.value for r in Reason if r not in NEEDS_REGISTRY}
    for reason, n in expected_reasons.items():
        assert metrics[f'engagement_events_invalid_total{{reason="{reason}"}}'] == n

    # every valid event is on the partition its user id hashes to, exactly once
    seen: Counter[tuple[str | None, str | None]] = Counter()
    for record in read_all(broker.bootstrap, f"{name}.events.by_user", partitions):
        _, _, events = decode_batch(record.value())
        for event in events:
            assert record.partition() == partition_for(event.user_id.encode(), partitions)
            seen[(event.user_id, event.event_id)] += 1
    assert set(seen) == {(m.user_id, m.event_id) for m in good}
    assert max(seen.values()) == 1

    # every malformed one is dead-lettered with its reason, original value and headers kept
    got: Counter[str] = Counter()
    for record in read_all(broker.bootstrap, f"{name}.dead_letter", partitions):
        headers = dict(record.headers() or [])
        assert headers["engagement.error.topic"].decode() == input_topic
        assert "x-trace" in headers
        got[headers["engagement.error.reason"].decode()] += 1
    assert got == expected_reasons

    # the ingest group's committed offsets reach the end of the input
    ends = {p: 0 for p in range(partitions)}
    for record in read_all(broker.bootstrap, input_topic, partitions):
        ends[record.partition()] = max(ends[record.partition()], record.offset() + 1)
    assert sum(ends.values()) == TOTAL
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": f"{name}-ingest"})
    try:
        tps = [TopicPartition(input_topic, p) for p in range(partitions)]
        committed = {tp.partition: tp.offset for tp in consumer.committed(tps, timeout=10)}
        assert committed == ends
    finally:
        consumer.close()
