"""A three-node (or N-node) Apache Kafka KRaft cluster on loopback, for fault scenarios.

Every node is combined broker + controller, and the controllers form one static quorum
(``controller.quorum.voters``): three JVMs rather than three brokers plus controllers, so any
one node may die and the other two still hold the quorum and the in-sync replicas. The nodes
start together (a lone voter never answers metadata: it waits for a quorum) and the cluster is
ready once every node answers and sees all brokers registered.

Each JVM gets a small heap and the client compiler only (fast start, little CPU on a shared
machine); the brokers' defaults make a topic created with replication factor -1 have
``replication`` replicas, and Kafka's own topics are replicated the same way.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Self

from schemas.errors import BrokerError
from streams.testbed.brokers._process import LOOPBACK, free_port
from streams.testbed.brokers.kafka import KafkaBroker, _cluster_id

NODE_JVM_OPTIONS = (
    "-Xms64m",
    "-Xmx320m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-Djava.awt.headless=true",
)


def cluster_properties(nodes: int) -> dict[str, str]:
    """Broker settings of an ``nodes``-node test cluster: replicated internal topics, quick
    fencing of a dead node (so leaders move within seconds), leadership handed back to a
    returning node within seconds too (the default checks every 5 minutes), few threads."""
    replicas, min_isr = str(min(3, nodes)), str(max(1, min(3, nodes) - 1))
    return {
        "default.replication.factor": replicas,
        "offsets.topic.replication.factor": replicas,
        "transaction.state.log.replication.factor": replicas,
        "transaction.state.log.min.isr": min_isr,
        "share.coordinator.state.topic.replication.factor": replicas,
        "share.coordinator.state.topic.min.isr": min_isr,
        "replica.lag.time.max.ms": "5000",
        "leader.imbalance.check.interval.seconds": "5",
        "num.replica.fetchers": "1",
        "num.network.threads": "2",
        "num.io.threads": "2",
        "background.threads": "2",
    }


class KafkaCluster:
    """``nodes`` KRaft nodes (ids 1..N) sharing one cluster id and one static quorum."""

    kind = "kafka"

    def __init__(
        self,
        lib_dir: Path,
        nodes: int = 3,
        *,
        data_dir: Path | None = None,
        extra_properties: dict[str, str] | None = None,
    ) -> None:
        if nodes < 1:
            raise BrokerError(f"a cluster needs at least one node, not {nodes}")
        controllers = {node_id: free_port() for node_id in range(1, nodes + 1)}
        voters = ",".join(f"{n}@{LOOPBACK}:{port}" for n, port in controllers.items())
        cluster_id = _cluster_id()
        properties = {**cluster_properties(nodes), **(extra_properties or {})}
        self.nodes = [
            KafkaBroker(
                lib_dir,
                port=free_port(),
                log_dir=None if data_dir is None else data_dir / f"node-{node_id}",
                extra_properties=properties,
                node_id=node_id,
                controller_port=port,
                quorum_voters=voters,
                cluster_id=cluster_id,
                jvm_options=NODE_JVM_OPTIONS,
            )
            for node_id, port in controllers.items()
        ]
        self.startup_seconds: float | None = None

    @property
    def lib_dir(self) -> Path:
        return self.nodes[0].lib_dir

    @property
    def bootstrap(self) -> str:
        """Every node: ``127.0.0.1:P1,127.0.0.1:P2,...`` for ``bootstrap.servers``."""
        return ",".join(node.bootstrap for node in self.nodes)

    @property
    def url(self) -> str:
        """``kafka://127.0.0.1:P1,kafka://127.0.0.1:P2,...`` for ``ENGAGEMENT_BROKER``."""
        return ",".join(node.url for node in self.nodes)

    @property
    def running(self) -> bool:
        return all(node.running for node in self.nodes)

    def node(self, node_id: int) -> KafkaBroker:
        for node in self.nodes:
            if node.node_id == node_id:
                return node
        raise BrokerError(f"no node {node_id} in this cluster")

    def start(self, timeout: float = 120.0) -> None:
        """Start every node that is not running (together) and wait until all are brokers
        of the cluster; on failure every node is stopped and the first error raised."""
        started = time.monotonic()
        idle = [node for node in self.nodes if not node.running]
        with ThreadPoolExecutor(max_workers=max(1, len(idle))) as pool:
            futures = [pool.submit(node.start, timeout) for node in idle]
            errors = [f.exception() for f in futures if f.exception() is not None]
        if errors:
            self.stop()
            raise errors[0]  # type: ignore[misc]  # a BrokerError from KafkaBroker.start
        self.wait_for_brokers(len(self.nodes), started + timeout)
        self.startup_seconds = time.monotonic() - started

    def wait_for_brokers(self, count: int, deadline: float) -> None:
        """Until the cluster's metadata lists ``count`` brokers (a restarted node registered)."""
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0})
        seen = 0
        while time.monotonic() < deadline:
            try:
                seen = len(admin.list_topics(timeout=2.0).brokers)
            except Exception:  # a node still starting: ask again until the deadline
                seen = 0
            if seen >= count:
                return
            time.sleep(0.2)
        raise BrokerError(f"Kafka cluster at {self.bootstrap}: {seen} of {count} brokers in time")

    def stop(self, timeout: float | None = None) -> None:
        for node in self.nodes:
            node.stop(timeout)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"KafkaCluster({self.bootstrap}, {len(self.nodes)} nodes)"
