"""Fault scenarios (``make faults``): their own Apache Kafka broker, which they may kill and
restart (``make_system``), or their own three-node cluster, whose nodes they may kill and
restart (``make_cluster_system``), a simulated population per scenario, the independent oracle,
and the results table written to ``reports/faults.md`` at the end of the session.
"""

from __future__ import annotations

import os
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from streams.testbed.brokers import KafkaBroker, KafkaCluster, default_kafka_lib
from tests.faults import Message, Row, System, write_report
from tests.integration.conftest import make_unique_name, start_or_skip
from tests.oracle import DAY_MS, Oracle, RawEvent, disorder, population

HERE = os.path.dirname(__file__)
ROOT = Path(__file__).resolve().parents[2]
REPORT = ROOT / "reports" / "faults.md"
CHANNELS = ("organic", "paid_search", "paid_social", "email", "referral")
HOUR = 3_600_000
PARTITIONS = 4
USERS = int(os.environ.get("ENGAGEMENT_FAULT_USERS", "2000"))
DAYS = 40
ROWS: list[Row] = []
FAILED: list[tuple[str, str]] = []  # (test, first line of the error) of failed scenarios


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "faults: fault scenarios (make faults)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if str(item.path).startswith(HERE):
            item.add_marker(pytest.mark.faults)


def pytest_sessionfinish(session: pytest.Session) -> None:
    if ROWS or FAILED:
        preamble = (
            f"{USERS:,} simulated users over {DAYS} days per scenario (event clock, reordering, "
            "late events, 5 % duplicates), Apache Kafka 4.1.1, "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. Recovery: from the end of "
            "the fault until input is committed to its end and every gauge equals the oracle."
        )
        print("\n" + write_report(ROWS, REPORT, preamble, FAILED))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if call.when == "call" and report.failed and call.excinfo is not None:
        message = str(call.excinfo.value).splitlines()[0][:160].replace("|", "/")
        FAILED.append((item.name.removeprefix("test_").replace("_", " "), message))
    return report


@pytest.fixture(scope="session")
def fault_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    """A broker of our own (the scenarios stop and restart it), data in a kept log dir."""
    broker = KafkaBroker(default_kafka_lib(), log_dir=tmp_path_factory.mktemp("kafka-data"))
    start_or_skip(broker, "Apache Kafka")
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def fault_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    """Three KRaft nodes of our own (scenarios kill and restart nodes), data in kept dirs;
    topics created with replication factor -1 get 3 replicas (the brokers' default)."""
    cluster = KafkaCluster(default_kafka_lib(), 3, data_dir=tmp_path_factory.mktemp("cluster"))
    start_or_skip(cluster, "a three-node Apache Kafka cluster")
    try:
        yield cluster
    finally:
        cluster.stop()


@dataclass
class Workload:
    """A population's input messages (two halves) and the oracle's view of it."""

    first: list[Message]
    second: list[Message]
    oracle: Oracle
    end_ms: int

    @property
    def size(self) -> int:
        return len(self.first) + len(self.second)

    @property
    def today(self) -> int:
        return (self.end_ms - HOUR) // DAY_MS


def canonical(e: RawEvent) -> Message:
    return Message(e.user_id.encode(), orjson.dumps(e.canonical()), (e.user_id, e.event_id))


def workload(seed: int, extra: list[RawEvent] | None = None) -> Workload:
    end_ms = int(time.time() * 1000) - 60_000  # never in the future
    start = end_ms // DAY_MS * DAY_MS - (DAYS - 1) * DAY_MS
    events = [e for e in population(seed, USERS, DAYS, start, CHANNELS) if e.timestamp_ms < end_ms]
    stream = [canonical(e) for e in disorder(events, seed + 1, HOUR)]
    clock = [RawEvent("clock", f"clock-{p}", end_ms) for p in range(PARTITIONS)]
    closing = [
        Message(b"clock", canonical(c).value, ("clock", c.event_id), partition=p)
        for p, c in enumerate(clock)
    ]
    half = len(stream) // 2
    oracle = Oracle.from_events(events + clock + (extra or []), CHANNELS)
    return Workload(stream[:half], stream[half:] + closing, oracle, end_ms)


def expected_gauges(oracle: Oracle, today: int) -> dict[str, float]:
    """The oracle's value of every gauge the scenarios compare (as in test_gauges)."""
    want: dict[str, float] = {"engagement_users_tracked": len(oracle.days)}
    for window, width in (("1d", 1), ("7d", 7), ("30d", 30)):
        want[f'engagement_active_users{{window="{window}"}}'] = oracle.active(today, width)
    for status, n in oracle.lifecycle(today).items():
        want[f'engagement_lifecycle_users{{status="{status}"}}'] = n
    for n_days in (1, 7, 30):
        for channel in ("other", *CHANNELS):
            for period, day in (("today", today), ("last_complete", today - 1)):
                size, on, after = oracle.retention(day - n_days, n_days, channel)
                labels = f'{{channel="{channel}",day="{n_days}",period="{period}"}}'
                want[f"engagement_retention_cohort_users{labels}"] = size
                want[f"engagement_retention_retained_users{labels}"] = on
                want[f"engagement_retention_retained_on_or_after_users{labels}"] = after
    return want


@pytest.fixture
def make_system(fault_broker: KafkaBroker, tmp_path: Path) -> Iterator[type[System] | object]:
    """``make_system(scenario, **settings)``: a System on the single fault broker."""
    yield from _systems(fault_broker.url, tmp_path)


@pytest.fixture
def make_cluster_system(
    fault_cluster: KafkaCluster, tmp_path: Path
) -> Iterator[type[System] | object]:
    """``make_cluster_system(scenario, **settings)``: a System on the three-node cluster."""
    yield from _systems(fault_cluster.url, tmp_path)


def _systems(broker_url: str, tmp_path: Path) -> Iterator[type[System] | object]:
    systems: list[System] = []

    def make(scenario: str, **overrides: str) -> System:
        name = make_unique_name(f"fault-{scenario}")
        env = {
            "ENGAGEMENT_BROKER": broker_url,
            "ENGAGEMENT_APP_ID": name,
            "ENGAGEMENT_TOPIC_PREFIX": name,
            "ENGAGEMENT_INPUT_TOPIC": f"{name}.user.events",
            "ENGAGEMENT_PARTITIONS": str(PARTITIONS),
            "ENGAGEMENT_SESSION_TIMEOUT": "6s",
            "ENGAGEMENT_WEB_HOST": "127.0.0.1",
            "ENGAGEMENT_LOG_LEVEL": "info",
            "ENGAGEMENT_CLOCK": "event",
            # the end of the input is idleness after 10 s, not 30 s: scenarios end sooner
            "ENGAGEMENT_IDLE_TIMEOUT": "10s",
            "ENGAGEMENT_CHANNELS": ",".join(CHANNELS),
            # the ledger replays by_user in one engine; around a takeover its watermark at a
            # batch differs from the live worker's, and so would which late reactivations are
            # older than the max age: the scenarios check delivery, so the max age is off
            "ENGAGEMENT_SIGNAL_MAX_AGE": "0",
            **overrides,
        }
        system = System(env, tmp_path / scenario)
        systems.append(system)
        return system

    yield make
    for system in systems:
        for worker in system.workers.values():
            if worker.running:
                print(f"--- {worker.name} log tail ---\n{worker.log_tail(30)}")
        system.stop_all()
