"""Event clock after kill -9, on each broker: a worker that starts at the end of its input
still moves the clock where the killed one would have.

The killed worker's ingest read and committed all input, but its watermark never got past 0
(its empty input partitions were not idle yet). The next worker reads nothing: it has to learn
the event times from the committed offsets, or no deadline ever fires until new input comes.
Expected here from the definitions: the watermark is the newest event time less the allowed
lateness (one hour), so the quiet user's dormant deadline (7 days after its one event) has
passed and its churn deadline (30 days) has not.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from streams.settings import Settings
from tests.integration.conftest import BrokerHandle
from tests.integration.workers import (
    produce_events,
    read_signals,
    running_worker,
    wait_for,
    wait_metric,
    worker_env,
)

pytestmark = pytest.mark.integration
DAY = 86_400_000
HOUR = 3_600_000
T0 = (int(time.time() * 1000) // DAY - 60) * DAY  # midnight UTC, 60 days ago
QUIET_AT = T0 + 10 * HOUR
NEWEST = T0 + 20 * DAY


def committed_offsets(bootstrap: str, group: str, topic: str, partitions: int) -> int:
    """The sum of ``group``'s committed offsets on ``topic`` (without joining the group)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        tps = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], 10)
        return sum(max(tp.offset, 0) for tp in tps)
    finally:
        consumer.close()


def test_a_worker_starting_at_the_end_of_its_input_takes_the_clock_from_the_commits(
    broker: BrokerHandle, unique_name
) -> None:
    name = unique_name("restart-clock")
    # idle input partitions hold the first worker's clock at 0 for the whole test
    first = worker_env(broker, name, ENGAGEMENT_CLOCK="event", ENGAGEMENT_IDLE_TIMEOUT="600s")
    events: list[dict[str, Any]] = [
        {"event_id": "q", "user_id": "quiet", "event_type": "page_view", "timestamp": QUIET_AT},
        {"event_id": "c", "user_id": "clock", "event_type": "page_view", "timestamp": NEWEST},
    ]
    topic, group = first["ENGAGEMENT_INPUT_TOPIC"], f"{name}-ingest"
    with running_worker(first, "first") as worker:
        produce_events(broker.bootstrap, topic, events)
        wait_metric([worker], "engagement_events_folded_total", len(events), timeout=90)
        wait_for(
            lambda: committed_offsets(broker.bootstrap, group, topic, 4) == len(events),
            30,
            "ingest's input commits",
        )
        assert worker.metrics().get("engagement_watermark_timestamp_seconds", 0) == 0
        worker.kill()
    settings = Settings.from_env(first)
    assert read_signals(settings) == []  # nothing fired: the clock never moved
    second = {**first, "ENGAGEMENT_IDLE_TIMEOUT": "3s"}
    want = NEWEST - HOUR
    with running_worker(second, "second") as worker:
        wait_for(
            lambda: (
                worker.metrics().get("engagement_watermark_timestamp_seconds", 0) >= want / 1000
            ),
            60,
            "the clock of the committed input",
        )
        assert worker.metrics().get("engagement_events_consumed_total", 0) == 0  # read nothing
        wait_for(lambda: len(read_signals(settings)) >= 1, 30, "the quiet user's signal")
    got = {(s.user_id, s.kind, s.event_time_ms) for s in read_signals(settings)}
    assert got == {("quiet", "dormant", QUIET_AT + 7 * DAY)}
