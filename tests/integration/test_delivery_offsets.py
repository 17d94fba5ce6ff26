"""The worker's roles share one producer and flush it in turn: each flush still tells its caller
the offsets of what it produced, whichever role's flush served the delivery reports.

Before, a flush returned only the reports it served itself. The in-process ingest's by_user
flush took the changelog's reports of the group in flight, the group's own flush then got none,
the changelog offsets were not recorded as the stores' persisted offsets, and a worker that kept
its partitions across a rebalance re-read their whole changelog through Faust's per-record
recovery (10-15 s in the bench's two-worker phase) and rebuilt them.
"""

from __future__ import annotations

import asyncio

import pytest
from confluent_kafka import Consumer, TopicPartition

from streams.settings import Settings
from streams.worker.delivery import Deliverer
from tests.integration.conftest import BrokerHandle, create_topics
from tests.integration.workers import worker_env

pytestmark = pytest.mark.integration


def last_offsets(bootstrap: str, topic: str, partitions: int) -> dict[tuple[str, int], int]:
    """What Kafka holds: the offset of the last record of each partition (high watermark - 1)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{topic}-reader"})
    try:
        return {
            (topic, p): consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] - 1
            for p in range(partitions)
        }
    finally:
        consumer.close()


def test_a_flush_returns_the_offsets_another_roles_flush_served(
    kafka_broker: BrokerHandle, unique_name
) -> None:
    name = unique_name("offsets")
    settings = Settings.from_env(worker_env(kafka_broker, name))
    changelog, by_user = f"{name}-changelog", f"{name}-by-user"
    create_topics(kafka_broker.bootstrap, {changelog: 2, by_user: 2})
    deliverer = Deliverer(settings)

    async def run() -> tuple[dict[tuple[str, int], int], dict[tuple[str, int], int]]:
        deliverer.produce_all(changelog, [(0, f"u{i}".encode(), b"state") for i in range(3)])
        deliverer.produce(changelog, b"v", b"state", 1)
        deliverer.produce(by_user, None, b"batch", 1)
        served = await deliverer.flush("by_user")  # takes every report so far
        return served, await deliverer.flush("changelog")

    try:
        served, own = asyncio.run(run())
    finally:
        deliverer.close()
    held = last_offsets(kafka_broker.bootstrap, changelog, 2)
    assert held == {(changelog, 0): 2, (changelog, 1): 0}
    assert {tp: own[tp] for tp in held} == held
    assert served[(by_user, 1)] == last_offsets(kafka_broker.bootstrap, by_user, 2)[(by_user, 1)]
    assert (by_user, 0) not in own  # nothing was written there
