"""Delivering what must not be lost: one confluent-kafka producer, awaited in bulk.

Records are produced without waiting (a few µs each); :meth:`Deliverer.flush` then waits, off
the event loop, until Kafka acknowledged every one of them. A record Kafka refuses is produced
again after a back-off, and counted, until it goes through: the caller has not acknowledged the
input that produced it, so nothing after it is committed meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from confluent_kafka import KafkaError, Message, Producer

from schemas.records import Headers
from streams.kafka import producer_config
from streams.settings import Settings
from streams.worker.metrics import Metrics

log = logging.getLogger(__name__)


class Sink(Protocol):
    """What the stages need from delivery: produce now, make durable on ``flush``."""

    def produce(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int = -1,
        headers: Headers | None = None,
    ) -> None: ...

    async def flush(self, role: str) -> dict[tuple[str, int], int]: ...


@dataclass(slots=True)
class _Round:
    """Delivery reports since the last completed flush."""

    failed: list[tuple[Message, KafkaError, Headers | None]] = field(default_factory=list)
    offsets: dict[tuple[str, int], int] = field(default_factory=lambda: defaultdict(lambda: -1))


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
        produce = self._producer.produce
        while True:
            try:
                if headers:
                    kept: list[tuple[str, str | bytes | None]] = list(headers)
                    produce(topic, value, key, partition, self._keeping(kept), headers=kept)
                else:
                    produce(topic, value, key, partition, self._delivered)
                return
            except BufferError:  # local queue full: serve delivery reports, then go on
                self._producer.poll(0.05)

    def _keeping(self, headers: list[tuple[str, str | bytes | None]]) -> Any:
        def delivered(err: KafkaError | None, msg: Message) -> None:
            self._delivered(err, msg, cast(Headers | None, headers))

        return delivered

    def _delivered(
        self, err: KafkaError | None, msg: Message, headers: Headers | None = None
    ) -> None:
        round_ = self._round
        if err is not None:
            round_.failed.append((msg, err, headers))
            return
        topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
        if topic is not None and partition is not None and offset is not None:
            tp = (topic, partition)
            round_.offsets[tp] = max(round_.offsets[tp], offset)

    async def flush(self, role: str) -> dict[tuple[str, int], int]:
        """Wait until everything produced so far is acknowledged; returns the highest
        acknowledged offset per (topic, partition) of this round."""
        async with self._lock:
            loop = asyncio.get_running_loop()
            backoff = 0.1
            offsets: dict[tuple[str, int], int] = {}
            while True:
                while len(self._producer) > 0:
                    await loop.run_in_executor(None, self._producer.flush, 1.0)
                self._producer.poll(0)
                # every report up to now is in this round (the queue is empty)
                round_, self._round = self._round, _Round()
                for tp, offset in round_.offsets.items():
                    offsets[tp] = max(offsets.get(tp, -1), offset)
                if not round_.failed:
                    return offsets
                self._retry(role, round_.failed, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._max_backoff)

    def _retry(
        self, role: str, failed: list[tuple[Message, KafkaError, Headers | None]], backoff: float
    ) -> None:
        log.warning(
            "%d record(s) not delivered (%s); retrying in %.1fs",
            len(failed),
            failed[0][1].str(),
            backoff,
        )
        for msg, _, headers in failed:
            topic, partition = msg.topic(), msg.partition()
            if topic is None:
                continue
            if self._metrics is not None:
                self._metrics.delivery_retries.labels(role_of(topic, role)).inc()
            self.produce(
                topic, msg.key(), msg.value(), -1 if partition is None else partition, headers
            )

    def close(self, timeout: float = 10.0) -> int:
        """Flush what is left (blocking) and return how many records were not delivered."""
        return int(self._producer.flush(timeout))


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
