"""The topics engagement-stream owns, and creating them before the worker starts."""

from __future__ import annotations

import logging

from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from schemas.errors import BrokerError
from streams.kafka import client_config
from streams.settings import Settings

log = logging.getLogger(__name__)
SIGNAL_KINDS = ("dormant", "churn_risk", "churned", "reactivated")


def owned_topics(settings: Settings) -> list[str]:
    """events.by_user, dead_letter and the four signal topics (prefixed)."""
    return [
        settings.topic("events.by_user"),
        settings.topic("dead_letter"),
        *(settings.topic(f"signals.{kind}") for kind in SIGNAL_KINDS),
    ]


def ensure_topics(settings: Settings, timeout: float = 30.0) -> list[str]:
    """Create the input topic (if missing) and every owned topic; returns those created."""
    admin = AdminClient(client_config(settings))
    existing = set(admin.list_topics(timeout=timeout).topics)
    wanted = [settings.input_topic, *owned_topics(settings)]
    missing = [name for name in wanted if name not in existing]
    if not missing:
        return []
    futures = admin.create_topics(
        [NewTopic(name, settings.partitions, settings.replication_factor) for name in missing],
        operation_timeout=timeout,
    )
    for name, future in futures.items():
        try:
            future.result(timeout)
        except Exception as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise BrokerError(f"could not create topic {name}: {exc}") from exc
    log.info("created topics %s", missing)
    return missing
