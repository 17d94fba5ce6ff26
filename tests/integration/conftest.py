"""Real brokers for the integration tests: Apache Kafka 4.1.1 (KRaft) and Tansu.

- ``ENGAGEMENT_TEST_BROKERS`` picks the kinds (default ``kafka,tansu``); the ``broker`` fixture
  is parametrized over them (ids ``kafka`` / ``tansu``), ``kafka_broker`` is Apache Kafka only.
- One broker process per kind for the whole session, started the first time a test asks.
- A broker that cannot start skips its tests locally; with ``CI=true`` it fails the run.
- Kafka's jars: ``$ENGAGEMENT_KAFKA_LIB``, else ``~/.cache/engagement-stream/kafka-<v>/lib``,
  fetched with ``mvn`` when missing.
- ``schema_registry``: a real Confluent-compatible Schema Registry (Apicurio, in memory), one
  for the session; built with ``mvn`` into ``$ENGAGEMENT_REGISTRY_DIR`` when missing
  (``make registry``). Skipped locally when it cannot start, a failure with ``CI=true``.

Helpers for tests: :func:`create_topics`, :func:`make_unique_name`; fixture ``unique_name``.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from schemas.errors import BrokerError
from streams.testbed.brokers import (
    BROKER_KINDS,
    KafkaBroker,
    KafkaCluster,
    TansuBroker,
    default_kafka_lib,
    fetch_kafka_jars,
    kafka_jars_present,
)
from streams.testbed.brokers.registry import (
    SchemaRegistry,
    build_registry,
    default_registry_dir,
    runner_jar,
)

BROKERS_ENV = "ENGAGEMENT_TEST_BROKERS"
HERE = os.path.dirname(__file__)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test under tests/integration is an integration test."""
    for item in items:
        if str(item.path).startswith(HERE):
            item.add_marker(pytest.mark.integration)


def selected_kinds() -> list[str]:
    """The broker kinds named by ``ENGAGEMENT_TEST_BROKERS`` (default: all)."""
    raw = os.environ.get(BROKERS_ENV, ",".join(BROKER_KINDS))
    kinds = [kind.strip().lower() for kind in raw.split(",") if kind.strip()]
    unknown = sorted(set(kinds) - set(BROKER_KINDS))
    if unknown:
        raise pytest.UsageError(f"{BROKERS_ENV}: unknown broker kind(s) {unknown}")
    return list(dict.fromkeys(kinds))


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


def start_or_skip(broker: KafkaBroker | KafkaCluster, what: str) -> None:
    """Start a broker a fixture of its own needs (fetching the Kafka jars if missing); if it
    cannot start, skip the tests using it, or fail them with ``CI=true``."""
    try:
        if not kafka_jars_present(broker.lib_dir):
            fetch_kafka_jars(broker.lib_dir)
        broker.start()
    except BrokerError as exc:
        broker.stop()
        if in_ci():
            raise
        pytest.skip(f"{what} unavailable: {exc}")


@dataclass(frozen=True)
class BrokerHandle:
    """What a test gets: which broker, and where it listens."""

    kind: str
    bootstrap: str
    url: str


@dataclass
class BrokerPool:
    """Starts each kind at most once per session; remembers failures so they are not retried."""

    started: dict[str, KafkaBroker | TansuBroker] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)

    def get(self, kind: str) -> BrokerHandle:
        if kind in self.failures:
            self._unavailable(kind, self.failures[kind])
        if kind not in self.started:
            try:
                self.started[kind] = self._start(kind)
            except BrokerError as exc:
                self.failures[kind] = str(exc)
                self._unavailable(kind, str(exc))
        broker = self.started[kind]
        return BrokerHandle(kind=kind, bootstrap=broker.bootstrap, url=broker.url)

    def stop_all(self) -> None:
        for broker in self.started.values():
            broker.stop()
        self.started.clear()

    @staticmethod
    def _start(kind: str) -> KafkaBroker | TansuBroker:
        broker: KafkaBroker | TansuBroker
        if kind == "kafka":
            lib = default_kafka_lib()
            if not kafka_jars_present(lib):
                fetch_kafka_jars(lib)
            broker = KafkaBroker(lib)
        else:
            broker = TansuBroker()
        try:
            broker.start()
        except BrokerError:
            broker.stop()
            raise
        return broker

    @staticmethod
    def _unavailable(kind: str, reason: str) -> None:
        if in_ci():
            raise BrokerError(f"{kind} broker did not start (CI=true, so this fails):\n{reason}")
        pytest.skip(f"{kind} broker unavailable: {reason}")


@pytest.fixture(scope="session")
def broker_pool() -> Iterator[BrokerPool]:
    pool = BrokerPool()
    try:
        yield pool
    finally:
        pool.stop_all()


@pytest.fixture(scope="session", params=selected_kinds())
def broker(request: pytest.FixtureRequest, broker_pool: BrokerPool) -> BrokerHandle:
    """Each selected broker kind in turn (test ids ``[kafka]`` / ``[tansu]``)."""
    kind: str = request.param
    return broker_pool.get(kind)


@pytest.fixture(scope="session")
def kafka_broker(broker_pool: BrokerPool) -> BrokerHandle:
    """Apache Kafka only (for tests that need what Tansu lacks)."""
    if "kafka" not in selected_kinds():
        pytest.skip(f"Apache Kafka is not selected by {BROKERS_ENV}")
    return broker_pool.get("kafka")


@pytest.fixture(scope="session")
def schema_registry() -> Iterator[SchemaRegistry]:
    """A real Schema Registry on loopback for the session (see the module docstring)."""
    registry = SchemaRegistry(default_registry_dir())
    try:
        if runner_jar(registry.registry_dir) is None:
            build_registry(registry.registry_dir)
        registry.start()
    except BrokerError as exc:
        registry.stop()
        if in_ci():
            raise
        pytest.skip(f"Schema Registry unavailable: {exc}")
    try:
        yield registry
    finally:
        registry.stop()


def make_unique_name(prefix: str) -> str:
    """``prefix-<12 hex>``: a topic or group name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> Callable[[str], str]:
    """``unique_name("events")`` -> ``events-<test name>-<hex>`` (legal Kafka topic name)."""
    test = re.sub(r"[^A-Za-z0-9._-]+", "-", request.node.name).strip("-")[:60]

    def name(prefix: str) -> str:
        return make_unique_name(f"{prefix}-{test}")

    return name


def create_topics(
    bootstrap: str,
    topics: dict[str, int],
    *,
    config: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> None:
    """Create ``{name: partitions}`` (replication factor 1) and wait until each one exists."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    new = [
        NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})
        for name, partitions in topics.items()
    ]
    futures = admin.create_topics(new, operation_timeout=timeout, request_timeout=timeout)
    for future in futures.values():
        future.result(timeout=timeout)
    wait_for_topics(admin, topics, timeout)


def wait_for_topics(admin: AdminClient, topics: dict[str, int], timeout: float) -> None:
    """Poll metadata until every topic shows its partitions with a leader."""
    deadline = time.monotonic() + timeout
    missing = dict(topics)
    while missing:
        metadata = admin.list_topics(timeout=max(1.0, deadline - time.monotonic()))
        for name, partitions in list(missing.items()):
            found = metadata.topics.get(name)
            if found is None or found.error is not None or len(found.partitions) < partitions:
                continue
            if all(p.leader >= 0 for p in found.partitions.values()):
                del missing[name]
        if missing and time.monotonic() > deadline:
            raise TimeoutError(f"topics not ready after {timeout}s: {sorted(missing)}")
        if missing:
            time.sleep(0.1)
