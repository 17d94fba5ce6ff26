"""Delivering what must not be lost: one confluent-kafka producer, awaited in bulk.

Records are produced without waiting (a few µs each); :meth:`Deliverer.flush` then waits, off
the event loop, until Kafka acknowledged every one of them. A record Kafka refuses (in its
delivery report, or at once when ``produce`` raises) is handled by the kind of error
(:func:`failure_kind`), and every attempt beyond the first is counted:

* ``retry``: produced again after a back-off until it goes through (a broker away, a leader
  moving, a topic briefly unwritable).
* ``too_large``: a dead letter is produced again reduced to its error headers and digest
  (:func:`agents.logic.dead_letters.digest_dead_letter`); if even that is refused (a topic that
  takes no record of a kilobyte: a setting an operator must fix), the full record is retried
  after a back-off until the topic takes it, so the fix loses nothing. Any other record cannot
  be reduced: fail-stop, like ``fatal``.
* ``fatal``: :meth:`flush` raises :class:`~schemas.errors.DeliveryFailed` naming the record
  (its topic and partition, and for a dead letter the input topic, partition and offset).

Either way the caller has not acknowledged the input behind a record that is not delivered, so
nothing after it is committed meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol, cast

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from agents.logic.dead_letters import digest_dead_letter, is_reduced_to_digest
from agents.logic.ingest import ERROR_HEADER_PREFIX
from schemas.errors import DeliveryFailed
from schemas.records import Headers
from streams.kafka import producer_config
from streams.settings import Settings
from streams.worker.metrics import Metrics

log = logging.getLogger(__name__)


class Sink(Protocol):
    """What the stages need from delivery: produce now, make durable on ``flush``.

    ``flush`` raises :class:`~schemas.errors.DeliveryFailed` (a RuntimeError) for a record
    Kafka refuses for good; what the caller has not acknowledged stays unacknowledged."""

    def produce(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int = -1,
        headers: Headers | None = None,
    ) -> None: ...

    def produce_all(self, topic: str, records: list[tuple[int, bytes, bytes | None]]) -> None:
        """``produce`` each ``(partition, key, value)`` of ``records`` to ``topic`` (partition
        -1: the partitioner's choice by key)."""

    async def flush(self, role: str) -> dict[tuple[str, int], int]: ...


_TOO_LARGE = frozenset({KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.RECORD_LIST_TOO_LARGE})
_FATAL = frozenset(
    {
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
        KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
        KafkaError.INVALID_RECORD,
        KafkaError.TOPIC_EXCEPTION,
        KafkaError.UNSUPPORTED_FOR_MESSAGE_FORMAT,
        KafkaError._INVALID_ARG,
    }
)


def failure_kind(err: KafkaError) -> str:
    """``too_large``, ``fatal`` (retrying cannot help) or ``retry`` (anything else: librdkafka
    marks few errors retriable, and a refused record must not be given up lightly)."""
    code = err.code()
    if code in _TOO_LARGE:
        return "too_large"
    if err.fatal() or code in _FATAL:
        return "fatal"
    return "retry"


class Failed(NamedTuple):
    """A record Kafka refused, as it was produced. ``tried``: the other form of the same dead
    letter, refused before (the full record, for a digest; the digest, for a full record
    produced again because even its digest was refused)."""

    topic: str
    key: bytes | None
    value: bytes | None
    partition: int
    headers: Headers | None
    err: KafkaError
    tried: Failed | None = None

    def describe(self) -> str:
        """The record, for a person: output topic and partition, and for a dead letter the
        input record it stands for."""
        where = f"record for {self.topic} partition {self.partition}"
        error = {n: v for n, v in self.headers or () if n.startswith(ERROR_HEADER_PREFIX)}

        def text(name: str) -> str:
            raw = error.get(ERROR_HEADER_PREFIX + name)
            return raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)

        if error:
            where = (
                f"dead letter of {text('topic')} partition {text('partition')} offset "
                f"{text('offset')} ({text('reason')})"
            )
        return f"{where}: {self.err.str()}"


@dataclass(slots=True)
class _Round:
    """Failed deliveries since the last completed flush."""

    failed: list[Failed] = field(default_factory=list)


class Deliverer:
    """Produce now, make durable on :meth:`flush`."""

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics | None = None,
        max_backoff_s: float = 5.0,
        **overrides: Any,
    ) -> None:
        self._producer = Producer(producer_config(settings, **overrides))
        self._metrics = metrics
        self._round = _Round()
        # highest acknowledged offset per (topic, partition) for the producer's life: the
        # roles share the producer and flush in turn, and a flush takes every report that
        # came in before it, so per-flush offsets would give one role's reports to another
        self._acked: dict[tuple[str, int], int] = {}
        self._lock = asyncio.Lock()
        self._max_backoff = max_backoff_s

    def produce(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int = -1,
        headers: Headers | None = None,
    ) -> None:
        """Queue one record (a few µs: one shared delivery callback, no objects per record).

        A failed delivery report carries no headers (confluent-kafka 2.16), so records with
        headers (dead letters: rare) get a callback that keeps them for the retry."""
        self._produce(topic, key, value, partition, headers, tried=None)

    def produce_all(self, topic: str, records: list[tuple[int, bytes, bytes | None]]) -> None:
        """Queue many records without headers, ``(partition, key, value)`` (a group's changelog):
        :meth:`produce` each, without its two Python calls per record. A record ``produce``
        refuses at once takes :meth:`produce`'s path (the queue served, or a failure kept)."""
        produce, delivered = self._producer.produce, self._delivered
        for partition, key, value in records:
            try:
                produce(topic, value, key, partition, delivered)
            except (BufferError, KafkaException):
                self._produce(topic, key, value, partition, None, tried=None)

    def _produce(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int,
        headers: Headers | None,
        *,
        tried: Failed | None,
    ) -> None:
        """Queue one record; one Kafka refuses at once (too large for ``message.max.bytes``)
        goes to this round's failures like a failed delivery report."""
        produce = self._producer.produce
        while True:
            try:
                if headers or tried is not None:
                    kept: list[tuple[str, str | bytes | None]] = list(headers or ())
                    callback = self._keeping(kept, tried)
                    produce(topic, value, key, partition, callback, headers=kept)
                else:
                    produce(topic, value, key, partition, self._delivered)
                return
            except BufferError:  # local queue full: serve delivery reports, then go on
                self._producer.poll(0.05)
            except KafkaException as exc:
                err = exc.args[0]
                self._round.failed.append(Failed(topic, key, value, partition, headers, err, tried))
                return

    def _keeping(self, headers: list[tuple[str, str | bytes | None]], tried: Failed | None) -> Any:
        def delivered(err: KafkaError | None, msg: Message) -> None:
            self._delivered(err, msg, cast(Headers | None, headers), tried)

        return delivered

    def _delivered(
        self,
        err: KafkaError | None,
        msg: Message,
        headers: Headers | None = None,
        tried: Failed | None = None,
    ) -> None:
        round_ = self._round
        if err is not None:
            partition = msg.partition()
            round_.failed.append(
                Failed(
                    msg.topic() or "",
                    msg.key(),
                    msg.value(),
                    -1 if partition is None else partition,
                    headers,
                    err,
                    tried,
                )
            )
            return
        topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
        if topic is not None and partition is not None and offset is not None:
            tp = (topic, partition)
            if offset > self._acked.get(tp, -1):  # no max(): one report per record delivered
                self._acked[tp] = offset

    async def flush(self, role: str) -> dict[tuple[str, int], int]:
        """Wait until everything produced so far is acknowledged; returns the highest
        acknowledged offset per (topic, partition) this producer ever wrote to, so what a
        caller produced before the flush is at or below its partition's offset, whichever
        role's flush served the report."""
        async with self._lock:
            loop = asyncio.get_running_loop()
            backoff = 0.1
            while True:
                while len(self._producer) > 0:
                    await loop.run_in_executor(None, self._producer.flush, 1.0)
                self._producer.poll(0)
                # every report up to now is in this round (the queue is empty)
                round_, self._round = self._round, _Round()
                if not round_.failed:
                    return dict(self._acked)
                if self._handle(role, round_.failed, backoff):
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, self._max_backoff)

    def _handle(self, role: str, failed: list[Failed], backoff: float) -> bool:
        """Produce each failed record again as its kind of error says (reduced, or as it was);
        raises DeliveryFailed for the first that cannot be written. True: back off first."""
        later: list[Failed] = []
        for record in failed:
            kind = failure_kind(record.err)
            if kind == "too_large" and _is_dead_letter(record):
                if record.tried is None and not is_reduced_to_digest(record.headers):
                    self._reduce(role, record)  # first refusal: the digest, at once
                    continue
                if record.tried is not None and is_reduced_to_digest(record.headers):
                    log.error("Kafka refuses even the digest of a %s", record.describe())
                    later.append(record.tried._replace(tried=record))  # in full from now on
                else:
                    later.append(record)
            elif kind == "retry":
                later.append(record)
            else:
                log.critical("cannot deliver the %s; stopping", record.describe())
                raise DeliveryFailed(f"cannot deliver the {record.describe()}")
        if later:
            log.warning(
                "%d record(s) not delivered (%s); retrying in %.1fs",
                len(later),
                later[0].describe(),
                backoff,
            )
        for record in later:
            self._count_retry(role, record.topic)
            self._produce(*record[:5], tried=record.tried)
        return bool(later)

    def _reduce(self, role: str, record: Failed) -> None:
        """Produce the digest of a dead letter Kafka refused as too large (no back-off)."""
        log.warning("dead letter reduced to its digest: the %s", record.describe())
        key, value, headers = digest_dead_letter(
            record.key, record.value, list(record.headers or ())
        )
        self._count_retry(role, record.topic)
        self._produce(record.topic, key, value, record.partition, headers, tried=record)

    def _count_retry(self, role: str, topic: str) -> None:
        if self._metrics is not None:
            self._metrics.delivery_retries.labels(role_of(topic, role)).inc()

    def close(self, timeout: float = 10.0) -> int:
        """Flush what is left (blocking) and return how many records were not delivered."""
        return int(self._producer.flush(timeout))


def _is_dead_letter(record: Failed) -> bool:
    return any(name.startswith(ERROR_HEADER_PREFIX) for name, _ in record.headers or ())


def role_of(topic: str, default: str) -> str:
    """The stage a topic belongs to, for ``engagement_delivery_retries_total{role}``."""
    if topic.endswith(".dead_letter"):
        return "dead_letter"
    if topic.endswith(".events.by_user"):
        return "by_user"
    if topic.endswith("-changelog"):
        return "changelog"
    if ".signals." in topic:
        return "signals"
    return default
