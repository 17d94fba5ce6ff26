"""Every topic and consumer-group name engagement-stream uses, built here and nowhere else,
and creating the topics before the worker starts."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from schemas.errors import BrokerError, SettingsError
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
    leader: str  # Faust's leader-election topic: ``<app id>-__assignor-__leader``
    model: str  # the live model: partitions' (x, t_x, T) rows and the fitted parameters
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
            leader=f"{app_id}-__assignor-__leader",
            model=f"{prefix}.model",
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


def new_topics(settings: Settings) -> list[NewTopic]:
    """Every topic a worker needs, as it is created when missing: the input topic, the owned
    ones, the state changelog (compacted), Faust's leader topic (one partition) and the live
    model's (compacted, one partition: every worker reads all of it), each with
    ENGAGEMENT_REPLICATION_FACTOR (-1: the brokers' default, sent as such: CreateTopics v4+)
    and ENGAGEMENT_MIN_INSYNC_REPLICAS. Faust declares none of them itself (its replication
    setting cannot say "the brokers' default")."""
    topics = Topics.of(settings)
    config = {}
    if settings.min_insync_replicas > 0:
        config["min.insync.replicas"] = str(settings.min_insync_replicas)
    partitions = {name: settings.partitions for name in (topics.input, *topics.owned)}
    partitions |= {topics.changelog: settings.partitions, topics.leader: 1, topics.model: 1}
    compacted = {name: {"cleanup.policy": "compact"} for name in (topics.changelog, topics.model)}
    return [
        NewTopic(
            name, count, settings.replication_factor, config={**config, **compacted.get(name, {})}
        )
        for name, count in partitions.items()
    ]


def ensure_topics(settings: Settings, timeout: float = 30.0) -> list[str]:
    """Create each of :func:`new_topics` that is missing; returns the names created.

    SettingsError naming the variable when the brokers refuse the replication factor, or
    when a created topic has fewer replicas than ENGAGEMENT_MIN_INSYNC_REPLICAS (every
    acknowledged write would fail)."""
    admin = AdminClient(client_config(settings))
    existing = set(admin.list_topics(timeout=timeout).topics)
    missing = [topic for topic in new_topics(settings) if topic.topic not in existing]
    if not missing:
        return []
    futures = admin.create_topics(missing, operation_timeout=timeout)
    for name, future in futures.items():
        try:
            future.result(timeout)
        except Exception as exc:
            if "TOPIC_ALREADY_EXISTS" in str(exc):
                continue
            if "REPLICATION_FACTOR" in str(exc):
                raise SettingsError(
                    "ENGAGEMENT_REPLICATION_FACTOR", f"topic {name} refused: {exc}"
                ) from exc
            raise BrokerError(f"could not create topic {name}: {exc}") from exc
    names = [topic.topic for topic in missing]
    _check_min_insync(admin, settings, names, timeout)
    log.info("created topics %s", names)
    return names


def _check_min_insync(
    admin: AdminClient, settings: Settings, names: list[str], timeout: float
) -> None:
    if settings.min_insync_replicas <= 1:
        return
    deadline = time.monotonic() + timeout
    topics = admin.list_topics(timeout=timeout).topics
    while any(n not in topics for n in names) and time.monotonic() < deadline:
        time.sleep(0.1)  # the metadata of a topic just created may lag a moment
        topics = admin.list_topics(timeout=timeout).topics
    for name in names:
        partitions = topics[name].partitions.values() if name in topics else ()
        replicas = min((len(p.replicas) for p in partitions), default=0)
        if 0 < replicas < settings.min_insync_replicas:
            raise SettingsError(
                "ENGAGEMENT_MIN_INSYNC_REPLICAS",
                f"is {settings.min_insync_replicas} but topic {name} has {replicas} replica(s) "
                "(ENGAGEMENT_REPLICATION_FACTOR, or the brokers' default.replication.factor): "
                "no write could be acknowledged",
            )
