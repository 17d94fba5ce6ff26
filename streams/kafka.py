"""confluent-kafka configuration and small admin helpers shared by the fast tools.

Everything that talks to Kafka outside Faust (ingest, changelog writer, publisher, signal
consumer, admin, benchmarks) builds its client configuration here, from Settings, so that
security options and partitioning are the same everywhere.
"""

from __future__ import annotations

from typing import Any

from streams.settings import Settings


def bootstrap_servers(settings: Settings) -> str:
    """``kafka://a:9092,kafka://b:9092`` -> ``a:9092,b:9092``."""
    return ",".join(url.removeprefix("kafka://") for url in settings.broker)


def client_config(settings: Settings, **overrides: Any) -> dict[str, Any]:
    """Base librdkafka configuration for any client."""
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap_servers(settings),
        "client.id": settings.app_id,
    }
    config.update(overrides)
    return config


def producer_config(settings: Settings, **overrides: Any) -> dict[str, Any]:
    """A producer that keys like Kafka's Java client (murmur2), so keyed records land on the
    partition the Faust worker expects, and that does not lose acknowledged records."""
    return client_config(
        settings,
        **{
            "partitioner": "murmur2_random",
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 5,
            "batch.num.messages": 10_000,
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
