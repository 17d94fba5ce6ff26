"""Every user's latest state, read straight from the state table's changelog topic.

The tools (``engagement fit --from-state``, ``engagement retention``) need all partitions of a
running system, whichever worker owns which. The changelog has them all: this reader assigns
every partition from its beginning up to its end (the high watermark the broker reports when
the reader gets there; no consumer group membership, nothing committed), keeps the latest
value per key, lets tombstones delete, and sets the per-partition meta records (key
``META_KEY``) aside.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from agents.logic.meta import META_KEY
from agents.logic.returns import is_counts_key
from agents.logic.state import UserState, decode
from schemas.errors import BrokerError, StateDecodeError
from streams.kafka import consumer_config
from streams.settings import Settings
from streams.topics import Topics

log = logging.getLogger(__name__)

_BATCH = 5_000

ConsumerFactory = Callable[[dict[str, Any]], Any]


def changelog_topic(settings: Settings) -> str:
    """The state table's changelog topic: ``<app id>-users-changelog``."""
    return Topics.of(settings).changelog


@dataclass(slots=True)
class ChangelogSnapshot:
    """The changelog compacted in memory: latest raw state per user, meta per partition."""

    states: dict[bytes, bytes] = field(default_factory=dict)
    meta: dict[int, dict[str, Any]] = field(default_factory=dict)
    records: int = 0
    undecodable: int = 0

    def apply(self, partition: int, key: bytes | None, value: bytes | None) -> None:
        """One changelog record: the latest value per key wins, a tombstone deletes."""
        self.records += 1
        if key is None:
            return
        if key == META_KEY:
            if value is not None:
                self._apply_meta(partition, value)
            return
        if is_counts_key(key):  # the partition's return counts (agents.logic.returns)
            return
        if value is None:
            self.states.pop(key, None)
        else:
            self.states[key] = value

    def _apply_meta(self, partition: int, value: bytes) -> None:
        try:
            meta = orjson.loads(value)
        except orjson.JSONDecodeError:
            meta = None
        if isinstance(meta, dict):
            self.meta[partition] = meta

    def newest_watermark_ms(self) -> int:
        """The newest event-time watermark over the partitions' meta records (0 if none)."""
        return max((int(m.get("watermark_ms", 0)) for m in self.meta.values()), default=0)

    def users(self) -> Iterator[tuple[str, UserState]]:
        """``(user_id, state)`` for every live user; undecodable values are skipped and counted."""
        for key, raw in self.states.items():
            try:
                state = decode(raw)
            except StateDecodeError as exc:
                self.undecodable += 1
                log.warning("skipped an undecodable state: %s", exc)
                continue
            yield key.decode(errors="replace"), state


def _kafka_consumer(config: dict[str, Any]) -> Any:
    from confluent_kafka import Consumer

    return Consumer(config)


def _partitions(consumer: Any, topic: str, timeout: float) -> list[int]:
    metadata = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
    if metadata is None or metadata.error is not None or not metadata.partitions:
        raise BrokerError(f"changelog topic {topic!r} not found (is a worker running?)")
    return sorted(metadata.partitions)


def load_changelog(
    settings: Settings,
    topic: str | None = None,
    *,
    timeout: float = 30.0,
    consumer_factory: ConsumerFactory = _kafka_consumer,
) -> ChangelogSnapshot:
    """Read the whole changelog (default: the settings' one) up to its current end.

    ``timeout``: longest wait without any progress before :class:`BrokerError`.
    """
    topic = topic or changelog_topic(settings)
    snapshot = ChangelogSnapshot()

    def apply(message: Any) -> None:
        snapshot.apply(message.partition(), message.key(), message.value())

    read_partitions(
        settings, topic, None, apply, timeout=timeout, consumer_factory=consumer_factory
    )
    return snapshot


def read_partitions(
    settings: Settings,
    topic: str,
    starts: Mapping[int, int] | None,
    apply: Callable[[Any], None],
    *,
    timeout: float = 30.0,
    consumer_factory: ConsumerFactory = _kafka_consumer,
) -> dict[int, int]:
    """Hand every record of ``topic`` to ``apply``, from ``starts`` (partition -> first offset;
    None: every partition from its beginning) up to each partition's end. Returns the offset of
    the last record read per partition (partitions that had none are left out)."""
    from confluent_kafka import OFFSET_BEGINNING, TopicPartition

    config = consumer_config(
        settings,
        f"{settings.app_id}-state-reader-{uuid.uuid4().hex[:12]}",
        # reading to the end, never waiting for more: a fetch that finds nothing returns at once
        **{
            "enable.partition.eof": True,
            "fetch.max.bytes": 64 * 1024 * 1024,
            "fetch.wait.max.ms": 10,
        },
    )
    consumer = consumer_factory(config)
    try:
        if starts is None:
            starts = dict.fromkeys(_partitions(consumer, topic, timeout), OFFSET_BEGINNING)
        if not starts:
            return {}
        consumer.assign([TopicPartition(topic, n, offset) for n, offset in starts.items()])
        return _consume(consumer, set(starts), apply, timeout)
    finally:
        consumer.close()


def _consume(
    consumer: Any, remaining: set[int], apply: Callable[[Any], None], timeout: float
) -> dict[int, int]:
    """Apply records until every partition reported its end (``enable.partition.eof``).

    The end is the high watermark of the fetch responses, not of a ListOffsets query made up
    front: Tansu answered that one with a smaller offset when a produce request carried more
    than one record. Records a partition receives after its end are left for the next run.
    """
    from confluent_kafka import KafkaError

    last: dict[int, int] = {}
    last_progress = time.monotonic()
    while remaining:
        messages = consumer.consume(num_messages=_BATCH, timeout=0.1)
        if messages:
            last_progress = time.monotonic()
        elif time.monotonic() - last_progress > timeout:
            raise BrokerError(f"changelog read stalled; partitions left: {sorted(remaining)}")
        for message in messages:
            error = message.error()
            if error is None:
                if message.partition() in remaining:
                    apply(message)
                    last[message.partition()] = message.offset()
            elif error.code() == KafkaError._PARTITION_EOF:
                remaining.discard(message.partition())
            elif error.fatal():
                raise BrokerError(f"changelog read: {error.str()}")
            else:
                log.warning("changelog read: %s", error.str())
    return last


def read_states(
    settings: Settings,
    topic: str | None = None,
    *,
    timeout: float = 30.0,
    consumer_factory: ConsumerFactory = _kafka_consumer,
) -> Iterator[tuple[str, UserState]]:
    """``(user_id, UserState)`` of every user in the changelog (all partitions)."""
    snapshot = load_changelog(settings, topic, timeout=timeout, consumer_factory=consumer_factory)
    yield from snapshot.users()
