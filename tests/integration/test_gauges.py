"""Live gauges on Apache Kafka, two workers sharing the partitions, event clock.

Two thousand users over 60 days, published with reordering inside the lateness, late events and
duplicates. The gauges both workers export, summed as Prometheus sums them, must equal an
oracle computed straight from the raw events; a real Prometheus scraping both workers must
evaluate every expression of the rule files and the dashboard; a restarted worker must report
the same aggregates afterwards (rebuilt from the changelog).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Sequence

import orjson
import pytest
from confluent_kafka import Producer

from agents.logic.aggregates import rebuild
from agents.logic.days import Calendar
from streams.settings import Settings
from streams.testbed.brokers import free_port
from streams.testbed.processes import WorkerProcess
from streams.tools.retention import retention_triangle
from streams.worker.changelog import load_changelog
from tests.integration.conftest import BrokerHandle
from tests.integration.workers import ingest_group_settled, running_worker, wait_for, worker_env
from tests.monitoring import PrometheusServer, assert_all_expressions_evaluate
from tests.oracle import DAY_MS, Oracle, RawEvent, disorder, population

pytestmark = pytest.mark.integration
HOUR = 3_600_000
CHANNELS = ("organic", "paid_search", "paid_social", "email", "referral")
DAYS = 60
MUST_HAVE_DATA = (
    "record job_window:engagement_active_users",
    "record job_day_channel_period:engagement_retention_retained_users_per_cohort_users:ratio",
    "panel 'Active users",
    "panel 'Lifecycle today'",
    "panel 'Users per stage'",
    "panel 'Event rates' target A",
    "panel 'Partitions per worker'",
    "panel 'Users and deadlines per worker'",
)


def publish(
    bootstrap: str, topic: str, stream: Sequence[RawEvent], partitions: int, end_ms: int | None
) -> int:
    """Publish ``stream`` keyed by user; with ``end_ms``, close the replay: every input
    partition then reaches that time."""
    producer = Producer(
        {"bootstrap.servers": bootstrap, "partitioner": "murmur2_random", "linger.ms": 20}
    )
    for e in stream:
        producer.produce(topic, key=e.user_id.encode(), value=orjson.dumps(e.canonical()))
        producer.poll(0)
    for p in range(partitions if end_ms is not None else 0):
        producer.produce(
            topic,
            partition=p,
            key=b"clock",
            value=orjson.dumps(
                {
                    "event_id": f"clock-{p}",
                    "user_id": "clock",
                    "event_type": "page_view",
                    "timestamp": end_ms,
                }
            ),
        )
    assert producer.flush(60) == 0
    return len(stream) + (partitions if end_ms is not None else 0)


def publish_in_halves(
    bootstrap: str, topic: str, workers: list[WorkerProcess], stream: list[RawEvent], end_ms: int
) -> int:
    """Publish ``stream`` in two halves, the second once every partition's clock has passed a
    day before the first half's newest event, so the second half's events older than that are
    late whatever the timing. Returns that count of late ones."""
    first, second = stream[: len(stream) // 2], stream[len(stream) // 2 :]
    settled = max(e.timestamp_ms for e in first) - DAY_MS
    late_by_construction = sum(e.timestamp_ms < settled for e in second)
    assert late_by_construction >= 10, late_by_construction
    sent = publish(bootstrap, topic, first, 4, None)
    wait_for(
        lambda: summed(workers).get("engagement_events_consumed_total") == sent,
        180,
        f"{sent} events consumed",
    )
    wait_for(
        lambda: all(
            w.metrics()["engagement_watermark_timestamp_seconds"] * 1000 >= settled for w in workers
        ),
        60,
        "the first half's watermark",
    )
    # The gauge is the newest of a worker's partitions; the ingest processes hand their
    # watermark to every partition each WATERMARK_EVERY_S (0.25 s).
    time.sleep(2.0)
    sent += publish(bootstrap, topic, second, 4, end_ms)
    wait_for(
        lambda: summed(workers).get("engagement_events_consumed_total") == sent,
        180,
        f"{sent} events consumed",
    )
    return late_by_construction


def summed(workers: list[WorkerProcess]) -> dict[str, float]:
    total: dict[str, float] = {}
    for worker in workers:
        for name, value in worker.metrics().items():
            total[name] = total.get(name, 0.0) + value
    return total


def check_against_oracle(total: dict[str, float], oracle: Oracle, today: int) -> None:
    for window, width in (("1d", 1), ("7d", 7), ("30d", 30)):
        assert total[f'engagement_active_users{{window="{window}"}}'] == oracle.active(
            today, width
        ), window
    for status, n in oracle.lifecycle(today).items():
        assert total[f'engagement_lifecycle_users{{status="{status}"}}'] == n, status
    for n_days in (1, 7, 30):
        for channel in ("other", *CHANNELS):
            for period, day in (("today", today), ("last_complete", today - 1)):
                size, on, after = oracle.retention(day - n_days, n_days, channel)
                labels = f'{{channel="{channel}",day="{n_days}",period="{period}"}}'
                assert total[f"engagement_retention_cohort_users{labels}"] == size, labels
                assert total[f"engagement_retention_retained_users{labels}"] == on, labels
                assert total[f"engagement_retention_retained_on_or_after_users{labels}"] == after, (
                    labels
                )
    assert total["engagement_users_tracked"] == len(oracle.days)


def test_two_workers_gauges_equal_the_oracle(
    kafka_broker: BrokerHandle, unique_name, tmp_path
) -> None:
    name = unique_name("gauges")
    end_ms = int(time.time() * 1000) - 60_000  # the replay closes just now (never in future)
    start = end_ms // DAY_MS * DAY_MS - (DAYS - 1) * DAY_MS
    events = [e for e in population(11, 2000, DAYS, start, CHANNELS) if e.timestamp_ms < end_ms]
    stream = disorder(events, 12, HOUR)
    clock = [RawEvent("clock", f"clock-{p}", end_ms) for p in range(4)]
    oracle = Oracle.from_events(events + clock, CHANNELS)
    today = (end_ms - HOUR) // DAY_MS
    base = worker_env(
        kafka_broker, name, ENGAGEMENT_CLOCK="event", ENGAGEMENT_CHANNELS=",".join(CHANNELS)
    )
    envs = [
        {
            **base,
            "ENGAGEMENT_WEB_PORT": str(free_port()),
            "ENGAGEMENT_DATA_DIR": str(tmp_path / f"w{i}"),
        }
        for i in range(2)
    ]
    settings = Settings.from_env(base)
    with running_worker(envs[0], "w0") as w0, running_worker(envs[1], "w1") as w1:
        workers = [w0, w1]
        wait_for(
            lambda: [w.metrics().get("engagement_partitions_owned") for w in workers] == [2.0, 2.0],
            60,
            "two partitions on each worker",
        )
        wait_for(ingest_group_settled(kafka_broker.bootstrap, name, 2), 60, "ingest group")
        late_by_construction = publish_in_halves(
            kafka_broker.bootstrap, settings.input_topic, workers, stream, end_ms
        )
        wait_for(
            lambda: all(
                w.metrics()["engagement_watermark_timestamp_seconds"] * 1000 >= end_ms - HOUR
                for w in workers
            ),
            60,
            "the final watermark",
        )
        time.sleep(2.5)  # one more snapshot after the last batch
        total = summed(workers)
        assert total["engagement_events_duplicate_total"] > 0
        late = total["engagement_events_late_total"]
        assert late >= late_by_construction, (late, late_by_construction)
        check_against_oracle(total, oracle, today)
        check_exposition(w0)
        check_user_routing(workers, oracle)
        check_retention_triangle(settings, oracle, today)

        with PrometheusServer([w.base_url.removeprefix("http://") for w in workers]) as prom:
            wait_for(
                lambda: bool(prom.query('sum(engagement_active_users{window="1d"})')),
                30,
                "Prometheus to scrape both workers",
            )
            time.sleep(3)  # a few scrapes, so rate() has two points
            results = assert_all_expressions_evaluate(prom)
            empty = [
                where
                for where, data in results.items()
                if not data and where.startswith(MUST_HAVE_DATA)
            ]
            assert not empty, f"expressions without data: {empty}"
            dau = prom.query('sum(engagement_active_users{window="1d"})')
            assert float(dau[0]["value"][1]) == oracle.active(today, 1)

        w1.stop()  # the other worker takes all partitions over, then it comes back
        wait_for(
            lambda: w0.metrics().get("engagement_partitions_owned") == 4.0,
            90,
            "worker 0 owning every partition",
        )
        wait_for(
            lambda: (
                summed([w0]).get('engagement_active_users{window="30d"}')
                == oracle.active(today, 30)
            ),
            30,
            "worker 0's gauges after the takeover",
        )
        check_against_oracle(summed([w0]), oracle, today)
        w1.start()
        wait_for(
            lambda: (
                sum(w.metrics().get("engagement_partitions_owned", 0) for w in workers) == 4.0
                and w1.metrics().get("engagement_partitions_owned", 0) > 0
            ),
            90,
            "both workers sharing the partitions again",
        )
        time.sleep(2.5)
        check_against_oracle(summed(workers), oracle, today)


def check_exposition(worker: WorkerProcess) -> None:
    """promtool accepts a real worker's exposition."""
    status, body = worker.get("/metrics")
    assert status == 200
    check = subprocess.run(
        ["promtool", "check", "metrics"], input=body, capture_output=True, timeout=30, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr


def check_user_routing(workers: list[WorkerProcess], oracle: Oracle) -> None:
    """Any worker answers for any user: requests for another worker's users are routed."""
    for user in sorted(oracle.days)[:40]:
        answers = [w.user(user) for w in workers]
        assert answers[0] is not None and answers[0] == answers[1], user
        assert answers[0]["last_active_day"] == Calendar.iso(max(oracle.days[user]))
    assert all(w.user("nobody-at-all") is None for w in workers)


def check_retention_triangle(settings: Settings, oracle: Oracle, today: int) -> None:
    """`engagement retention` reads every partition of the running system from the changelog."""
    snapshot = load_changelog(settings)
    agg = rebuild((state for _, state in snapshot.users()), Calendar(settings.timezone))
    triangle = retention_triangle(agg, today, 14, ("other", *CHANNELS), by_channel=True)
    for row in triangle.rows:
        assert row.channel is not None
        size, on, _ = oracle.retention(row.cohort_day, 1, row.channel)
        assert row.size == size, row
        if row.counts[1] is not None:
            assert row.counts[1] == on, row
