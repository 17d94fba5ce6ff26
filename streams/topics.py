"""Every topic and consumer-group name engagement-stream uses, built here and nowhere else,
and creating the topics before the worker starts."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from schemas.errors import BrokerError
from schemas.records import SIGNAL_KINDS
from streams.kafka import client_config
from streams.settings import Settings

log = logging.getLogger(__name__)
STATE_TABLE = "users"  # the Faust table of user states; its changelog is named after it


@dataclass(frozen=True, slots=True)
class Topics:
    """The names for one deployment (``ENGAGEMENT_APP_ID``, ``ENGAGEMENT_TOPIC_PREFIX``)."""

    input: str
    by_user: str
    dead_letter: str
    quarantine: str  # by_user records the activity stage cannot read (not input: see README)
    signals: Mapping[str, str]  # signal kind -> topic
    changelog: str  # the state table's: ``<app id>-users-changelog``
    ingest_group: str  # ingest's consumer group on the input topic

    @classmethod
    def of(cls, settings: Settings) -> Topics:
        prefix, app_id = settings.topic_prefix, settings.app_id
        return cls(
            input=settings.input_topic,
            by_user=f"{prefix}.events.by_user",
            dead_letter=f"{prefix}.dead_letter",
            quarantine=f"{prefix}.events.by_user.quarantine",
            signals={kind: f"{prefix}.signals.{kind}" for kind in SIGNAL_KINDS},
            changelog=f"{app_id}-{STATE_TABLE}-changelog",
            ingest_group=f"{app_id}-ingest",
        )

    def signal_topics(self, kinds: Iterable[str] = SIGNAL_KINDS) -> list[str]:
        """The topic of each kind, in the order given (unknown kinds raise ValueError)."""
        kinds = list(dict.fromkeys(kinds))
        unknown = sorted(set(kinds) - set(SIGNAL_KINDS))
        if unknown:
            raise ValueError(f"unknown signal kind(s) {unknown}; known: {', '.join(SIGNAL_KINDS)}")
        return [self.signals[kind] for kind in kinds]

    @property
    def owned(self) -> list[str]:
        """events.by_user, its quarantine, dead_letter and the signal topics (the changelog is
        Faust's)."""
        return [self.by_user, self.quarantine, self.dead_letter, *self.signals.values()]


def owned_topics(settings: Settings) -> list[str]:
    """events.by_user, its quarantine, dead_letter and the signal topics (prefixed)."""
    return Topics.of(settings).owned


def ensure_topics(settings: Settings, timeout: float = 30.0) -> list[str]:
    """Create the input topic (if missing) and every owned topic; returns those created."""
    admin = AdminClient(client_config(settings))
    existing = set(admin.list_topics(timeout=timeout).topics)
    topics = Topics.of(settings)
    wanted = [topics.input, *topics.owned]
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
