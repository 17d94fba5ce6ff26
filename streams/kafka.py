"""confluent-kafka configuration and small admin helpers shared by the fast tools.

Everything that talks to Kafka outside Faust (ingest, changelog writer, publisher, signal
consumer, admin, benchmarks) builds its client configuration here, from Settings, so that
security options and partitioning are the same everywhere.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource  # type: ignore[attr-defined]

from schemas.errors import BrokerUnreachable
from streams.settings import Settings

log = logging.getLogger(__name__)
_FATAL_ACCESS = {KafkaError._AUTHENTICATION: "authentication", KafkaError._SSL: "TLS"}


class LibrdkafkaLog:
    """librdkafka's own log lines (``logger`` in a client's configuration), into Python logging
    as logger ``librdkafka`` instead of raw ``%3|...|FAIL|...`` lines on stderr: so they follow
    ENGAGEMENT_LOG_FORMAT and secret masking. Connection failures are retried by librdkafka and
    reported through the error callback, so its lines are logged at debug level (critical
    ones, syslog levels 0-2, at error level)."""

    logger = logging.getLogger("librdkafka")

    def log(self, level: int, msg: str, *args: Any) -> None:
        self.logger.log(logging.ERROR if level >= logging.CRITICAL else logging.DEBUG, msg, *args)


LIBRDKAFKA_LOG = LibrdkafkaLog()


def bootstrap_servers(settings: Settings) -> str:
    """``kafka://a:9092,kafka://b:9092`` -> ``a:9092,b:9092``."""
    return ",".join(url.removeprefix("kafka://") for url in settings.broker)


def client_config(settings: Settings, **overrides: Any) -> dict[str, Any]:
    """Base librdkafka configuration for any client."""
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap_servers(settings),
        "client.id": settings.app_id,
        "error_cb": raise_on_access_failure,
        "logger": LIBRDKAFKA_LOG,
        **security_config(settings),
    }
    config.update(overrides)
    return config


def security_config(settings: Settings) -> dict[str, Any]:
    """librdkafka's names for ENGAGEMENT_SECURITY_PROTOCOL, SASL_* and SSL_* settings."""
    protocol = settings.security_protocol
    config: dict[str, Any] = {"security.protocol": protocol.lower()}
    if protocol.startswith("SASL_"):
        config["sasl.mechanism"] = settings.sasl_mechanism
        config["sasl.username"] = settings.sasl_username
        config["sasl.password"] = settings.sasl_password
    if protocol.endswith("SSL"):
        for name, path in (
            ("ssl.ca.location", settings.ssl_ca_file),
            ("ssl.certificate.location", settings.ssl_cert_file),
            ("ssl.key.location", settings.ssl_key_file),
        ):
            if path:
                config[name] = path
    return config


def raise_on_access_failure(error: KafkaError) -> None:
    """librdkafka's error callback: a refused login or TLS handshake is not retried forever
    but raised (as BrokerError, from the client's next poll or flush); other errors are
    transient (a broker restarting) and only logged at debug level: librdkafka retries them."""
    what = _FATAL_ACCESS.get(error.code())
    if what is None:
        log.debug("kafka client: %s", error.str())
        return
    raise BrokerUnreachable(
        f"Kafka {what} failed: {error.str()} (check ENGAGEMENT_SECURITY_* settings)"
    )


def check_brokers(settings: Settings, timeout: float | None = None) -> None:
    """Ask the brokers for metadata, waiting at most ``timeout`` (default
    ENGAGEMENT_CONNECT_TIMEOUT): :class:`BrokerUnreachable` naming ENGAGEMENT_BROKER if none
    answers, so a command fails in seconds instead of retrying for minutes. A refused TLS
    handshake or SASL login is reported as such (the error callback, served between tries)."""
    wait = settings.connect_timeout if timeout is None else timeout
    admin = AdminClient(client_config(settings))
    deadline = time.monotonic() + wait
    while True:
        try:
            admin.list_topics(timeout=max(0.05, min(1.0, deadline - time.monotonic())))
            return
        except KafkaException as exc:
            failure = exc
        admin.poll(0)  # raises BrokerUnreachable from raise_on_access_failure on a refusal
        if time.monotonic() >= deadline:
            break
    reason = failure.args[0].str() if hasattr(failure.args[0], "str") else str(failure)
    raise BrokerUnreachable(
        f"no Kafka broker answered at {bootstrap_servers(settings)} within {wait:g}s "
        f"({reason}); check ENGAGEMENT_BROKER, or raise ENGAGEMENT_CONNECT_TIMEOUT"
    )


def record_headroom(max_bytes: int) -> int:
    """Bytes a Kafka limit needs beyond a record's key + value + headers: record and batch
    framing, and lz4's worst-case growth of incompressible data (under 0.5 %)."""
    return 1024 + max_bytes // 200


def producer_config(settings: Settings, **overrides: Any) -> dict[str, Any]:
    """A producer that keys like Kafka's Java client (murmur2), so keyed records land on the
    partition the Faust worker expects, and that does not lose acknowledged records.

    The broker holds a whole batch to the topic's ``max.message.bytes``, so batches are kept to
    what the start-up check compared with it (ENGAGEMENT_RECORD_MAX_BYTES and framing), not
    librdkafka's 1 MB default."""
    return client_config(
        settings,
        **{
            "partitioner": "murmur2_random",
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 5,
            "batch.num.messages": 10_000,
            "batch.size": settings.record_max_bytes + record_headroom(settings.record_max_bytes),
            "queue.buffering.max.messages": 1_000_000,
            "compression.type": "lz4",
            **overrides,
        },
    )


def consumer_config(settings: Settings, group_id: str, **overrides: Any) -> dict[str, Any]:
    """A consumer whose offsets are committed explicitly, after the work they stand for."""
    return client_config(
        settings,
        **{
            "group.id": group_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": int(settings.session_timeout * 1000),
            "heartbeat.interval.ms": max(100, int(settings.session_timeout * 1000) // 5),
            **overrides,
        },
    )


def topic_configs(
    settings: Settings, topics: list[str], name: str, timeout: float = 30.0
) -> dict[str, int]:
    """The integer config ``name`` (e.g. ``max.message.bytes``) of each topic that exists."""
    admin = AdminClient(client_config(settings))
    existing = set(admin.list_topics(timeout=timeout).topics)
    resources = [ConfigResource("topic", topic) for topic in topics if topic in existing]
    if not resources:
        return {}
    values: dict[str, int] = {}
    for resource, future in admin.describe_configs(resources).items():
        entry = future.result(timeout).get(name)
        if entry is not None and entry.value is not None:
            values[resource.name] = int(entry.value)
    return values
