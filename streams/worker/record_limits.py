"""Start-up check: every record ingest writes fits what Kafka takes.

Ingest splits its ``events.by_user`` records under ``ENGAGEMENT_RECORD_MAX_BYTES``; a limit
above the topics' ``max.message.bytes`` or the producer's ``message.max.bytes`` would make a
large batch undeliverable at run time, so the worker refuses to start, naming the setting.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from confluent_kafka import KafkaException

from schemas.errors import BrokerError, SettingsError
from streams.kafka import producer_config, record_headroom, topic_configs
from streams.settings import Settings
from streams.topics import Topics

log = logging.getLogger(__name__)

PRODUCER_MAX_BYTES = 1_000_000  # librdkafka's default message.max.bytes


def record_limit_problem(max_bytes: int, limits: Mapping[str, int]) -> str | None:
    """Why records of ``max_bytes`` cannot be written under ``limits`` (what -> its limit in
    bytes), or None if they can."""
    need = max_bytes + record_headroom(max_bytes)
    for what, limit in sorted(limits.items()):
        if need > limit:
            return (
                f"{max_bytes} bytes (+{need - max_bytes} for record framing) is more than {what} "
                f"takes ({limit}): lower it, or raise {what}"
            )
    return None


def check_record_limit(settings: Settings, timeout: float = 30.0) -> None:
    """Start-up check: every record ingest writes fits the by_user and dead-letter topics'
    ``max.message.bytes`` and the producer's ``message.max.bytes``; raises SettingsError
    naming ENGAGEMENT_RECORD_MAX_BYTES if not."""
    producer = int(producer_config(settings).get("message.max.bytes", PRODUCER_MAX_BYTES))
    limits = {"the producer's message.max.bytes": producer}
    topics = [Topics.of(settings).by_user, Topics.of(settings).dead_letter]
    try:
        found = topic_configs(settings, topics, "max.message.bytes", timeout)
    except (KafkaException, BrokerError) as exc:  # e.g. no DescribeConfigs ACL: say so, go on
        log.warning("could not read max.message.bytes of the topics ingest writes: %s", exc)
        found = {}
    limits.update((f"max.message.bytes of topic {topic}", v) for topic, v in found.items())
    problem = record_limit_problem(settings.record_max_bytes, limits)
    if problem is not None:
        raise SettingsError("ENGAGEMENT_RECORD_MAX_BYTES", problem)
