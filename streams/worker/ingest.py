"""ingest: ``user.events`` (raw bytes) -> ``events.by_user`` batches | ``dead_letter``.

A service inside the worker that reads the input topic with confluent-kafka in batches (Faust's
per-message path would cost ~150 µs an event), hands each batch to the pure router, produces one
batch record per ``events.by_user`` partition plus the dead letters, waits until Kafka has them,
and only then commits the input offsets: at-least-once, and the fold downstream is idempotent.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, cast

from confluent_kafka import (
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    KafkaError,
    KafkaException,
    TopicPartition,
)
from mode import Service

from agents.logic.frontier import InputFrontier
from agents.logic.funnels import PropertySteps
from agents.logic.ingest import IngestLimits, limits_from
from agents.logic.routing import Routed, Router
from agents.logic.watermarks import InputWatermark, commit_metadata, source_id
from streams.kafka import consumer_config
from streams.settings import Settings
from streams.topics import Topics
from streams.worker.codecs import encode_batch, encode_batches
from streams.worker.delivery import Sink
from streams.worker.input_ends import InputEnds
from streams.worker.input_seeds import InputSeeds
from streams.worker.metrics import Metrics

log = logging.getLogger(__name__)
# Four times a second: bounds how late a wall-clock deadline fires on idle input (bench
# deadline p99 0.54-0.56 s; 0.9-1.3 s at once a second). Every by_user partition then gets a
# record every 250 ms, under a fetch's 500 ms long poll, so a reader of events.by_user cannot
# wait for _PARTITION_EOF to know it has read everything (tests/faults/ledger.py reads to the
# high watermarks instead).
WATERMARK_EVERY_S = 0.25
# Rows per by_user record; records are also split by encoded bytes under
# ENGAGEMENT_RECORD_MAX_BYTES (500 rows of the longest ids allowed, in 4-byte or escaped
# characters, would be 1.2-1.8 MB: over Kafka's default 1 MB).
MAX_BATCH_ROWS = 500
FLUSH_EVENTS = 20_000  # input messages per delivery round trip, at most ...
FLUSH_EVERY_S = 0.05  # ... or this long after the first unflushed one


def by_user_records(
    routed: Routed,
    clocks: tuple[tuple[int, int], tuple[int, int]],
    source: str,
    max_bytes: int,
    steps: PropertySteps,
) -> Iterator[tuple[int, bytes, bytes]]:
    """(partition, key, value) of the ``events.by_user`` records of one step: at most
    ``MAX_BATCH_ROWS`` rows and ``max_bytes`` each; ``clocks``: the (watermark, frontier)
    before the step read anything and after it (see :meth:`IngestService._produce`)."""
    before, after = clocks
    for partition, events in routed.batches.items():
        for key, value in encode_batches(
            before[0],
            events,
            source,
            max_bytes,
            MAX_BATCH_ROWS,
            frontier_ms=before[1],
            last=after,
            steps=steps,
        ):
            yield partition, key, value


def ingest_limits(settings: Settings) -> IngestLimits:
    """The validation limits the settings ask for."""
    return limits_from(
        settings.max_message_bytes,
        settings.max_future_skew,
        settings.schema_versions,
        settings.record_max_bytes,
    )


def ingest_router(settings: Settings) -> Router:
    """The ingest router the settings ask for; with ENGAGEMENT_SCHEMA_REGISTRY_URL set it
    decodes wire-format (Avro, Protobuf) values through that registry."""
    decoder = None
    if settings.schema_registry_url:
        from streams.worker.registry_input import RegistryDecoder  # only with the registry extra

        decoder = RegistryDecoder(settings.schema_registry_url)
    return Router(settings.partitions, ingest_limits(settings), decoder)


class IngestService(Service):
    """The confluent-kafka ingest loop, started and stopped with the worker."""

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        deliverer: Sink,
        router: Router,
        on_counted: Callable[[], None] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        # called after each step's counters moved and before its output is produced (the
        # ingest process reports its counters to the worker there, so they never lag the fold)
        self.on_counted = on_counted
        self.settings = settings
        self.metrics = metrics
        self.deliverer = deliverer
        self.router = router
        self.topics = Topics.of(settings)
        # funnel steps with a property match: by_user rows carry which ones an event matched
        self.property_steps = PropertySteps.of(settings.funnels)
        self.by_user = self.topics.by_user
        self.dead_letter = self.topics.dead_letter
        self._consumer: Consumer | None = None
        # partition -> (next offset, newest event time before it): delivered, to commit ...
        self._positions: dict[tuple[str, int], tuple[int, int]] = {}
        self._unflushed: dict[tuple[str, int], tuple[int, int]] = {}  # ... produced, not yet
        self._unflushed_events = 0
        self._unflushed_since = 0.0
        self.delivered_until: dict[int, int] = {}  # by_user partition -> next offset
        self._flush_lock = asyncio.Lock()
        self.instance = uuid.uuid4().hex[:12]
        self._inputs = 0  # the input topic's partitions (on_start asks the broker)
        # this instance and the input partitions it reads, for the partitions' clocks
        self.source = source_id(f"{self.instance}.0", 0, ())  # .generation: see _name_source
        self.watermark = InputWatermark(
            int(settings.allowed_lateness * 1000), int(settings.idle_timeout * 1000)
        )
        # how far in wall time all our input has been read
        self.frontier = InputFrontier(int(settings.allowed_lateness * 1000))
        self._broadcast_at = 0.0
        self._ends: InputEnds | None = None  # asks the brokers where the partitions end
        self._seeds = InputSeeds(settings, self.watermark, router)  # where their clocks start

    async def on_start(self) -> None:
        group = self.topics.ingest_group
        config = consumer_config(self.settings, group, on_commit=self._on_commit)
        config["enable.partition.eof"] = True  # idle partitions must not hold the watermark
        # Idleness is decided by time: at its end for ENGAGEMENT_IDLE_TIMEOUT
        self._consumer = Consumer(config)
        self._ends = InputEnds(self.settings, self.watermark, self.frontier)
        self._inputs = self._input_partitions(self._consumer)
        self._consumer.subscribe(
            [self.settings.input_topic], on_assign=self._on_assign, on_revoke=self._on_revoke
        )

    async def on_stop(self) -> None:
        # The consume loop may be waiting on a flush right now: take the lock so that its
        # positions are committed too, before the consumer closes.
        async with self._flush_lock:
            consumer, self._consumer = self._consumer, None
            if consumer is not None:
                if self._unflushed:
                    await self._flush(consumer)
                self._commit(consumer, asynchronous=False)  # everything delivered so far
                consumer.close()

    def _on_commit(self, err: Any, partitions: list[TopicPartition]) -> None:
        if err is not None:
            log.warning("input offset commit failed (%s); it is retried with the next one", err)

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.watermark.assign((tp.topic, tp.partition) for tp in partitions)
        self._name_source(consumer)
        self.frontier.assign((tp.topic, tp.partition) for tp in partitions)
        # their event times so far: asked from the consume loop
        self._seeds.unseeded.update((tp.topic, tp.partition) for tp in partitions)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._commit(consumer, asynchronous=False)
        self.watermark.revoke((tp.topic, tp.partition) for tp in partitions)
        self._name_source(consumer)
        self.frontier.revoke((tp.topic, tp.partition) for tp in partitions)
        self._seeds.unseeded.difference_update((tp.topic, tp.partition) for tp in partitions)
        for tp in partitions:  # unflushed output is re-read by the next owner: idempotent
            self._positions.pop((tp.topic, tp.partition), None)
            self._unflushed.pop((tp.topic, tp.partition), None)

    def _commit(self, consumer: Consumer, asynchronous: bool) -> None:
        offsets = [  # the metadata lets the next reader of a partition start with its clock
            TopicPartition(t, p, o, commit_metadata(newest))
            for (t, p), (o, newest) in self._positions.items()
        ]
        if not offsets:
            return
        try:
            if asynchronous:
                consumer.commit(offsets=offsets, asynchronous=True)
            else:
                consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:  # rebalanced meanwhile: the next owner re-reads
            log.info("input offset commit skipped: %s", exc)

    @Service.task
    async def _consume(self) -> None:
        while not self.should_stop:
            consumer = self._consumer
            if consumer is None:
                await self.sleep(0.05)
                continue
            try:
                messages = consumer.consume(self.settings.ingest_batch, timeout=0)
            except RuntimeError:  # closed by on_stop meanwhile
                break
            self._seeds.turn(consumer)
            if self._ends is not None:
                self._ends.turn()
            if messages:
                self._reopen_unread(consumer)  # a partition idle before a long flush may not be
                self.step(messages)
            self._broadcast_watermark(consumer)
            if self._unflushed and (
                not messages
                or self._unflushed_events >= FLUSH_EVENTS
                or time.monotonic() - self._unflushed_since >= FLUSH_EVERY_S
            ):
                await self._flush_and_commit(consumer)
            if not messages:
                await self.sleep(0.01)

    async def _flush_and_commit(self, consumer: Consumer) -> None:
        """Wait until Kafka has every batch and dead letter produced so far, then commit the
        input offsets they stand for (one round trip per group of steps, not per step)."""
        async with self._flush_lock:
            if self._consumer is not consumer:
                return  # stopped meanwhile: on_stop flushed and committed
            await self._flush(consumer)
            self._commit(consumer, asynchronous=True)

    async def _flush(self, consumer: Consumer) -> None:
        positions, self._unflushed = self._unflushed, {}
        self._unflushed_events = 0
        offsets = await self.deliverer.flush("by_user")
        for (topic, partition), offset in offsets.items():
            if topic == self.by_user:
                self.delivered_until[partition] = offset + 1
        self._positions.update(positions)

    def step(self, messages: list[Any]) -> None:
        """Route one batch of input messages and produce its output (not yet awaited)."""
        wall_ms = int(time.time() * 1000)
        routed = self.router.route_messages(
            messages,
            wall_ms,
            end_code=KafkaError._PARTITION_EOF,
            no_timestamp=TIMESTAMP_NOT_AVAILABLE,
        )
        for error in routed.errors:
            log.warning("input consumer error: %s", error)
        read_ms, at_end = routed.read_ms, routed.at_end
        for source in read_ms:  # records now: not idle, whatever end it reached before
            self.watermark.has_unread(source)
            self.frontier.has_unread(source)
        before = self.watermark.value(wall_ms), self.frontier.value(wall_ms)
        for source, newest in routed.newest_ms.items():
            self.watermark.observe(source, newest)
        for source, stamp in read_ms.items():
            self.frontier.read(source, stamp, routed.newest_ms.get(source, 0))
        for source, ended in at_end.items():
            if ended:
                self.watermark.reached_end(source, wall_ms, routed.end_offsets[source])
                self.frontier.reached_end(source)
        self._count(routed, routed.read)
        if self.on_counted is not None:
            self.on_counted()
        self._produce(routed, before)
        self._pending(routed, routed.read)

    def _pending(self, routed: Routed, read: int) -> None:
        """The input positions ``routed`` stands for, to commit once its output is delivered,
        each with the newest event time read up to it."""
        if not self._unflushed:
            self._unflushed_since = time.monotonic()
        for source, offset in routed.next_offsets.items():
            self._unflushed[source] = (offset, self.watermark.newest(source))
        self._unflushed_events += read

    def _produce(self, routed: Routed, before: tuple[int, int]) -> None:
        """Records of at most ``MAX_BATCH_ROWS`` rows and ``ENGAGEMENT_RECORD_MAX_BYTES`` for
        each partition. Only the last record of a partition carries the clocks this step moved
        to (``before``: the watermark and frontier before it read anything): the activity stage
        advances on each record's clocks, and would otherwise fire deadlines of users whose
        newer events are in the next record."""
        wall_ms = int(time.time() * 1000)
        after = self.watermark.value(wall_ms), self.frontier.value(wall_ms)
        max_bytes, steps = self.settings.record_max_bytes, self.property_steps
        for partition, key, value in by_user_records(
            routed, (before, after), self.source, max_bytes, steps
        ):
            self.deliverer.produce(self.by_user, key, value, partition)
        for dead in routed.dead:
            self.deliverer.produce(self.dead_letter, dead.key, dead.value, -1, dead.headers)

    def _count(self, routed: Routed, consumed: int) -> None:
        metrics = self.metrics
        metrics.consumed.inc(consumed)
        for event_type, n in routed.event_types.items():  # one increment per type, not per event
            metrics.count_valid(event_type, n)
        for dead in routed.dead:
            metrics.invalid.labels(dead.rejection.reason.value).inc()
        metrics.dead_lettered.inc(len(routed.dead))

    def _broadcast_watermark(self, consumer: Consumer) -> None:
        """Every ``WATERMARK_EVERY_S``, tell every partition how far event time got and how far
        in wall time all input has been read (and that this source is alive), so partitions
        without events of their own do not stall. Before any event time is known (watermark
        0) the record carries the frontier only."""
        now = time.monotonic()
        if now - self._broadcast_at < WATERMARK_EVERY_S:
            return
        self._broadcast_at = now
        self._reopen_unread(consumer)
        wall_ms = int(time.time() * 1000)
        value = encode_batch(
            self.watermark.value(wall_ms), [], self.source, self.frontier.value(wall_ms)
        )
        for partition in range(self.settings.partitions):
            self.deliverer.produce(self.by_user, None, value, partition)

    def _reopen_unread(self, consumer: Consumer) -> None:
        """A partition taken to be at its end whose high watermark (as the last fetch saw it)
        is past the offset its end-of-partition event gave has records still to read: it must
        hold the watermark. (Not the consumer's position: that is unknown until a record has
        been read, as after a restart at the partition's end.)"""
        for key in self.watermark.at_end():
            end = self.watermark.end_offset(key)
            try:
                _, high = consumer.get_watermark_offsets(
                    TopicPartition(*cast("tuple[str, int]", key)), cached=True
                )
            except KafkaException as exc:  # rebalancing: the assignment callbacks sort it out
                log.debug("unread check skipped: %s", exc)
                return
            if end >= 0 and high > end:
                self.watermark.has_unread(key)
                self.frontier.has_unread(key)

    def _input_partitions(self, consumer: Consumer) -> int:
        """The input topic's partition count, asked once before subscribing (never from a
        rebalance callback: librdkafka may serve other callbacks inside that call)."""
        topic = self.settings.input_topic
        try:
            return len(consumer.list_topics(topic, timeout=30).topics[topic].partitions)
        except (KafkaException, KeyError) as exc:
            log.warning("input partitions not known yet (%s): taken from the assignment", exc)
            return 0

    def _name_source(self, consumer: Consumer) -> None:
        """Name this source after the input partitions it reads now (see
        :func:`agents.logic.watermarks.source_id`). Runs in the rebalance callbacks: no broker
        calls here."""
        topic = self.settings.input_topic
        owned = [p for t, p in cast("set[tuple[str, int]]", self.watermark.assigned) if t == topic]
        inputs = max(self._inputs, max(owned, default=-1) + 1)
        self.source = source_id(f"{self.instance}.{self.watermark.generation}", inputs, owned)
