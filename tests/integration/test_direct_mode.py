"""ENGAGEMENT_INPUT_KEYED_BY_USER: the input is already keyed by user id with as many
partitions as the state table, so the worker folds straight from it (no re-keying hop)."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Producer

from tests.integration.conftest import BrokerHandle
from tests.integration.workers import produce_events, running_worker, wait_metric, worker_env

pytestmark = pytest.mark.integration


def test_events_are_folded_straight_from_a_keyed_input(
    kafka_broker: BrokerHandle, unique_name
) -> None:
    env = worker_env(kafka_broker, unique_name("direct"), ENGAGEMENT_INPUT_KEYED_BY_USER="true")
    now = int(time.time() * 1000)
    events = [
        {
            "event_id": f"d{i}",
            "user_id": f"user-{i % 25}",
            "event_type": "page_view",
            "timestamp": now - i * 1000,
        }
        for i in range(200)
    ]
    with running_worker(env) as worker:
        produce_events(kafka_broker.bootstrap, env["ENGAGEMENT_INPUT_TOPIC"], events)
        producer = Producer({"bootstrap.servers": kafka_broker.bootstrap})
        producer.produce(env["ENGAGEMENT_INPUT_TOPIC"], key=b"x", value=b"{not json")
        assert producer.flush(10) == 0
        wait_metric([worker], "engagement_events_folded_total", 200)
        wait_metric([worker], "engagement_events_dead_lettered_total", 1)
        wait_metric([worker], "engagement_users_tracked", 25, timeout=10)
        metrics = worker.metrics()
        assert metrics["engagement_events_consumed_total"] == 201
        assert metrics['engagement_events_invalid_total{reason="invalid_json"}'] == 1
        # name[] asks for some samples only (the bench's progress polls), gauges of the
        # snapshot collector included
        some = worker.metrics("engagement_events_folded_total", "engagement_users_tracked")
        assert some == {"engagement_events_folded_total": 200, "engagement_users_tracked": 25}
        assert worker.user("user-3") is not None
