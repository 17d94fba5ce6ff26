"""The first vertical slice on each broker: events in, exact counts in /metrics and the table."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.integration.conftest import BrokerHandle
from tests.integration.workers import produce_events, running_worker, wait_metric, worker_env

pytestmark = pytest.mark.integration


def test_thousand_events_are_counted_exactly(broker: BrokerHandle, unique_name) -> None:
    name = unique_name("slice")
    env = worker_env(broker, name)
    now = int(time.time() * 1000)
    events: list[dict[str, Any]] = [
        {
            "event_id": f"e{i}",
            "user_id": f"user-{i % 137}",
            "event_type": "page_view",
            "timestamp": now - (i % 50) * 60_000,
        }
        for i in range(1000)
    ]
    newest: dict[str, int] = {}
    for e in events:
        newest[e["user_id"]] = max(newest.get(e["user_id"], 0), e["timestamp"])
    with running_worker(env) as worker:
        produce_events(broker.bootstrap, env["ENGAGEMENT_INPUT_TOPIC"], events)
        wait_metric([worker], "engagement_events_folded_total", 1000)
        wait_metric([worker], "engagement_users_tracked", 137, timeout=10)
        metrics = worker.metrics()
        assert metrics["engagement_events_consumed_total"] == 1000
        assert metrics["engagement_events_duplicate_total"] == 0
        assert metrics["process_resident_memory_bytes"] > 0  # the process and GC collectors
        assert 'python_gc_collections_total{generation="2"}' in metrics
        today = int(time.time() * 1000) // 86_400_000
        dau = len({e["user_id"] for e in events if e["timestamp"] // 86_400_000 == today})
        assert metrics['engagement_active_users{window="1d"}'] == dau
        assert metrics['engagement_active_users{window="30d"}'] == 137
        for user, ts in list(newest.items())[:25]:
            answer = worker.user(user)
            assert answer is not None
            assert answer["last_event_time"].startswith(
                time.strftime("%Y-%m-%dT%H:%M", time.gmtime(ts / 1000))
            )
        assert worker.user("nobody") is None
