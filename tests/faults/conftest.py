"""Fault scenarios (``make faults``): their own Apache Kafka broker, which they may kill and
restart (``make_system``), or their own three-node cluster, whose nodes they may kill and
restart (``make_cluster_system``), a simulated population per scenario, the independent oracle,
and the results table written to ``reports/faults.md`` at the end of the session.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
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
# the wall-clock variant: chart defaults (wall clock, RocksDB) with delays of seconds
WALL_USERS = int(os.environ.get("ENGAGEMENT_FAULT_WALL_USERS", "150"))
WALL_SECONDS = 30
WALL = {
    "ENGAGEMENT_CLOCK": "wall",
    "ENGAGEMENT_STORE": "rocksdict://",
    "ENGAGEMENT_DORMANT_AFTER": "20s",
    "ENGAGEMENT_CHURNED_AFTER": "40s",
    # scaled down with the delays (1 h to 7 d): how late an event may be read and still count
    # as on time
    "ENGAGEMENT_ALLOWED_LATENESS": "2s",
}
CONFIGS = {"event-memory": {}, "wall-rocksdict": WALL}
ROWS: list[Row] = []
FAILED: list[tuple[str, str]] = []  # (test, first line of the error) of failed scenarios


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "faults: fault scenarios (make faults)")
    config.addinivalue_line("markers", "configs(*names): run a fault scenario only in these")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every scenario runs in both configurations (``-k event-memory`` or ``-k wall``), but
    for those marked ``@pytest.mark.configs(name, ...)``."""
    if "fault_config" in metafunc.fixturenames:
        marker = metafunc.definition.get_closest_marker("configs")
        names = list(marker.args) if marker is not None else list(CONFIGS)
        metafunc.parametrize("fault_config", names, indirect=True)


@pytest.fixture
def fault_config(request: pytest.FixtureRequest) -> dict[str, str]:
    return CONFIGS[request.param]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if str(item.path).startswith(HERE):
            item.add_marker(pytest.mark.faults)


def pytest_sessionfinish(session: pytest.Session) -> None:
    if ROWS or FAILED:
        preamble = (
            f"event-memory: {USERS:,} simulated users over {DAYS} days per scenario (event clock, "
            "memory store, reordering, late events, 5 % duplicates); wall-rocksdict: "
            f"{WALL_USERS} users sending events live for {WALL_SECONDS} s (wall clock, RocksDB, "
            "dormant after 20 s, churned after 40 s, lateness 2 s). Apache Kafka 4.1.1, "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. Recovery: from the end of "
            "the fault until input is committed to its end and every gauge equals the oracle. "
            "Missing / extra: signals the oracle expects and no worker delivered / delivered "
            "and not expected, beyond the classified ones in brackets (README, Reliability)."
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
    """A population's input messages (two halves) and the raw events behind them.

    Event clock: the events are stamped over the last ``DAYS`` days and published in bulk.
    Wall clock: each message is stamped when it is sent, paced over ``WALL_SECONDS``
    (``Message.at_ms``), so the raw events are only known once sent (:meth:`raw_events`).
    """

    first: list[Message]
    second: list[Message]
    events: list[RawEvent]  # every valid event (event clock; wall clock: the unpaced ones)
    end_ms: int
    clock: str = "event"
    start_ms: int = field(default_factory=lambda: int(time.time() * 1000))  # wall, at creation

    @property
    def size(self) -> int:
        return len(self.first) + len(self.second)

    def raw_events(self, system: System) -> list[RawEvent]:
        return self.events + (system.sent if self.clock == "wall" else [])

    def oracle(self, system: System) -> Oracle:
        return Oracle.from_events(self.raw_events(system), CHANNELS)

    def days(self, lateness_ms: int = HOUR) -> tuple[int, int]:
        """(today, the last complete day) the gauges describe now. On the wall clock a day is
        complete once the lateness after its end has passed: in the first ``lateness`` of a
        day, the day before yesterday (a run at 00:16 UTC once compared against yesterday)."""
        if self.clock == "wall":
            now = int(time.time() * 1000)
            return now // DAY_MS, (now - lateness_ms) // DAY_MS - 1
        today = (self.end_ms - lateness_ms) // DAY_MS
        return today, today - 1


def canonical(e: RawEvent) -> Message:
    return Message(e.user_id.encode(), orjson.dumps(e.canonical()), (e.user_id, e.event_id))


def workload(seed: int, system: System, extra: list[RawEvent] | None = None) -> Workload:
    """The scenario's input for the clock ``system`` runs on."""
    if system.settings.clock == "wall":
        return wall_workload(seed, extra)
    # never in the future. The input depends on the time of day the scenario starts (where its
    # last day is cut); a failed check names its end, and this variable replays that input.
    end_ms = int(os.environ.get("ENGAGEMENT_FAULT_END_MS", "0")) or int(time.time() * 1000) - 60_000
    events, clock = event_input(seed, end_ms)
    stream = [canonical(e) for e in disorder(events, seed + 1, HOUR)]
    closing = [
        Message(b"clock", canonical(c).value, ("clock", c.event_id), partition=p)
        for p, c in enumerate(clock)
    ]
    half = len(stream) // 2
    return Workload(stream[:half], stream[half:] + closing, events + clock + (extra or []), end_ms)


def event_input(
    seed: int, end_ms: int, users: int = USERS
) -> tuple[list[RawEvent], list[RawEvent]]:
    """The event-clock input before its disorder: ``DAYS`` days of ``users`` users, the last
    day cut at ``end_ms``, and one clock event per input partition at ``end_ms``."""
    start = end_ms // DAY_MS * DAY_MS - (DAYS - 1) * DAY_MS
    events = [e for e in population(seed, users, DAYS, start, CHANNELS) if e.timestamp_ms < end_ms]
    return events, [RawEvent("clock", f"clock-{p}", end_ms) for p in range(PARTITIONS)]


def wall_workload(seed: int, extra: list[RawEvent] | None = None) -> Workload:
    """Users sending events live for ``WALL_SECONDS``: gaps within a session, just under and
    over the dormant delay (20 s), each event stamped when it is sent."""
    rnd = random.Random(seed)
    paced: list[tuple[int, RawEvent]] = []
    span = WALL_SECONDS * 1000
    for u in range(WALL_USERS):
        channel = rnd.choice([*CHANNELS, None, "tiktok"])
        at, k = rnd.randrange(span * 3 // 4), 0
        while at < span:
            paced.append((at, RawEvent(f"u{u}", f"u{u}-{k}", at, channel)))
            at += rnd.choice([rnd.randrange(200, 3_000), rnd.randrange(15_000, 45_000)])
            k += 1
    paced.sort(key=lambda pair: pair[0])
    messages = [
        Message(e.user_id.encode(), None, (e.user_id, e.event_id), at_ms=at, event=e)
        for at, e in paced
    ]
    half = len(messages) // 2
    now = int(time.time() * 1000)
    return Workload(messages[:half], messages[half:], list(extra or []), now, clock="wall")


def expected_gauges(oracle: Oracle, today: int, last_complete: int) -> dict[str, float]:
    """The oracle's value of every gauge the scenarios compare (as in test_gauges)."""
    want: dict[str, float] = {"engagement_users_tracked": len(oracle.days)}
    for window, width in (("1d", 1), ("7d", 7), ("30d", 30)):
        want[f'engagement_active_users{{window="{window}"}}'] = oracle.active(today, width)
    for status, n in oracle.lifecycle(today).items():
        want[f'engagement_lifecycle_users{{status="{status}"}}'] = n
    for n_days in (1, 7, 30):
        for channel in ("other", *CHANNELS):
            for period, day in (("today", today), ("last_complete", last_complete)):
                size, on, after = oracle.retention(day - n_days, n_days, channel)
                labels = f'{{channel="{channel}",day="{n_days}",period="{period}"}}'
                want[f"engagement_retention_cohort_users{labels}"] = size
                want[f"engagement_retention_retained_users{labels}"] = on
                want[f"engagement_retention_retained_on_or_after_users{labels}"] = after
    return want


@pytest.fixture
def make_system(
    fault_broker: KafkaBroker, tmp_path: Path, fault_config: dict[str, str]
) -> Iterator[type[System] | object]:
    """``make_system(scenario, **settings)``: a System on the single fault broker."""
    yield from _systems(fault_broker.url, tmp_path, fault_config)


@pytest.fixture
def make_cluster_system(
    fault_cluster: KafkaCluster, tmp_path: Path, fault_config: dict[str, str]
) -> Iterator[type[System] | object]:
    """``make_cluster_system(scenario, **settings)``: a System on the three-node cluster."""
    yield from _systems(fault_cluster.url, tmp_path, fault_config)


def _systems(
    broker_url: str, tmp_path: Path, fault_config: dict[str, str]
) -> Iterator[type[System] | object]:
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
            # the oracle judges churn_risk under the configured parameters: no refit
            "ENGAGEMENT_MODEL_REFIT": "off",
            **fault_config,
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
