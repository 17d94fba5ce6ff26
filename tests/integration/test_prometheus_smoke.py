"""A real Prometheus with our rules scrapes two fake workers; every rule and panel query runs.

Needs ``/usr/bin/prometheus`` (Debian package ``prometheus``); no broker.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from threading import Thread
from wsgiref.simple_server import WSGIServer

import pytest
from prometheus_client import CollectorRegistry, start_http_server

from agents.logic.aggregates import Snapshot
from agents.logic.state import Stage
from streams.worker.metrics import Metrics, Published, SnapshotCollector
from tests.monitoring import PrometheusServer, assert_all_expressions_evaluate, free_port

pytestmark = pytest.mark.integration

CHANNELS = ["other", "organic", "paid_search"]
DAU = {"w1": 120, "w2": 80}
STICKINESS = "job:engagement_active_users_1d_per_30d:ratio"
RETENTION = "job_day_channel_period:engagement_retention_retained_users_per_cohort_users:ratio"
WINBACK = "job_channel:engagement_winback_reactivated_users_per_lapsed_users:ratio"


def fake_worker(name: str, scale: int) -> CollectorRegistry:
    """A registry holding plausible values for one worker's partitions."""
    registry = CollectorRegistry()
    metrics = Metrics(registry, ["page_view", "purchase"])
    metrics.consumed.inc(1000 * scale)
    metrics.count_valid("page_view")
    metrics.valid.labels("page_view").inc(900 * scale)
    metrics.invalid.labels("invalid_json").inc(40 * scale)
    metrics.dead_lettered.inc(40 * scale)
    metrics.duplicate.inc(5 * scale)
    metrics.late.inc(3 * scale)
    metrics.folded.inc(895 * scale)
    metrics.signals.labels("dormant").inc(7 * scale)
    metrics.delivery_retries.labels("changelog").inc(scale)
    for lag in (0.2, 0.7, 3.0, 45.0):
        metrics.lag.observe(lag)
    metrics.last_event.set(time.time() - 1)

    snap = Snapshot()
    snap.active.update({"1d": DAU[name], "7d": 3 * DAU[name], "30d": 10 * DAU[name]})
    snap.lifecycle.update({"new": 10, "returning": 60, "resurrecting": 5, "dormant": 20})
    snap.stages.update({Stage.NEW: 10, Stage.ACTIVE: 100, Stage.AT_RISK: 20, Stage.DORMANT: 30})
    for day in (1, 7, 30):
        for index in range(len(CHANNELS)):
            for period in ("last_complete", "today"):
                snap.cohort[(day, index, period)] = 40 * scale
                snap.retained[(day, index, period)] = (40 // day) * scale
                snap.retained_after[(day, index, period)] = (40 // day + 2) * scale
    snap.winback_lapsed.update({1: 50 * scale, 2: 10 * scale})
    snap.winback_reactivated.update({1: 5 * scale})
    published = Published(snap, time.time(), 4, 300, time.time() - 2)
    registry.register(SnapshotCollector(lambda: published, CHANNELS, [1, 7, 30]))
    return registry


@pytest.fixture
def workers() -> Iterator[list[str]]:
    servers: list[tuple[WSGIServer, Thread]] = []
    targets = []
    try:
        for scale, name in enumerate(DAU, start=1):
            port = free_port()
            servers.append(start_http_server(port, "127.0.0.1", fake_worker(name, scale)))
            targets.append(f"127.0.0.1:{port}")
        yield targets
    finally:
        for server, thread in servers:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)


def wait_for(
    prom: PrometheusServer, expr: str, until: Callable[[list[float]], bool], timeout_s: float = 30
) -> list[float]:
    """The values of ``expr`` once ``until`` accepts them (rules run after the scrapes)."""
    deadline = time.monotonic() + timeout_s
    values: list[float] = []
    while time.monotonic() < deadline:
        values = [float(sample["value"][1]) for sample in prom.query(expr)]
        if until(values):
            break
        time.sleep(0.5)
    return values


def test_every_expression_evaluates_against_two_workers(workers: list[str]) -> None:
    with PrometheusServer(workers) as prom:
        expected = [float(sum(DAU.values()))]
        dau = wait_for(prom, 'job_window:engagement_active_users:sum{window="1d"}', expected.__eq__)
        assert dau == expected, "DAU is not the sum of the workers' DAU"
        # rates need two scrapes of each worker
        scraped_before = "count(engagement_events_consumed_total offset 2s)"
        assert wait_for(prom, scraped_before, [2.0].__eq__) == [2.0]
        assert wait_for(prom, "job:engagement_events_consumed:rate5m", bool) == [0.0]

        results = assert_all_expressions_evaluate(prom)

        assert float(results[f"record {STICKINESS}"][0]["value"][1]) == 0.1
        assert len(results[f"record {RETENTION}"]) == 3 * len(CHANNELS) * 2
        assert len(results[f"record {WINBACK}"]) == 2  # nobody lapsed in "other"
        assert not results["alert EngagementStale"]
