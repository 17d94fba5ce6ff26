"""Where each newly assigned input partition's clock starts: the event times read before it.

An ingest instance that starts where the one before it stopped, at the end of its input (a
kill -9 after everything was read and committed), reads nothing and would never learn an event
time: its watermark would stay 0 and hold every ``events.by_user`` partition's clock where the
killed instance's last watermark record left it, firing no deadline until new input came. So
once for each partition it is given, the ingest asks for its committed offset, whose metadata
carries the newest event time read before it (:func:`agents.logic.watermarks.commit_metadata`).
A broker that keeps no commit metadata (Tansu), or offsets committed by another version or a
tool, leave the metadata empty: then the last :data:`READ_BACK` records before the committed
offset are read again and routed (nothing is produced) for their newest event time. Either way
the seed is at most the newest event time really read before the position, so the clock is
never ahead of what the instance before would have said.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Hashable
from typing import Any, cast

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from agents.logic.routing import RawRecord, Router
from agents.logic.watermarks import InputWatermark, newest_of
from streams.kafka import consumer_config
from streams.settings import Settings
from streams.topics import Topics

log = logging.getLogger(__name__)
SEED_TIMEOUT_S = 2.0  # the committed offsets, and the records read back, asked this long ...
SEED_EVERY_S = 1.0  # ... and again this long after a failed answer
READ_BACK = 64  # records before a committed offset without metadata, read for their times
Key = tuple[str, int]


class InputSeeds:
    """The partitions assigned whose clock is not seeded yet, and the asking."""

    def __init__(self, settings: Settings, watermark: InputWatermark, router: Router) -> None:
        self._settings = settings
        self._watermark = watermark
        self._router = router
        self.unseeded: set[Hashable] = set()  # assigned, committed event time not asked yet
        self._asked_at = 0.0

    def turn(self, consumer: Consumer) -> None:
        """Seed the partitions assigned since the last turn (a failed one on a later turn)."""
        now = time.monotonic()
        if not self.unseeded or now - self._asked_at < SEED_EVERY_S:
            return
        self._asked_at = now
        asked = [TopicPartition(*cast("Key", key)) for key in self.unseeded]
        try:
            answers = consumer.committed(asked, timeout=SEED_TIMEOUT_S)
        except KafkaException as exc:  # broker away or rebalancing: asked again
            log.info("committed input offsets not known yet: %s", exc)
            return
        blank: dict[Key, int] = {}  # committed, without an event time: read back
        for tp in answers:
            if tp.error is not None:
                continue
            key = (tp.topic, tp.partition)
            self.unseeded.discard(key)
            newest = newest_of(tp.metadata)
            if newest:
                self._watermark.seed(key, newest)
            elif tp.offset > 0:
                blank[key] = tp.offset
        if blank:
            for key, newest in self._read_back(blank).items():
                self._watermark.seed(key, newest)

    def _read_back(self, ends: dict[Key, int]) -> dict[Key, int]:
        """The newest event time of the last :data:`READ_BACK` records before each offset in
        ``ends`` (what is read within :data:`SEED_TIMEOUT_S`: a lower bound either way)."""
        # the ingest group's id (its ACL covers it) for a reader that never joins nor commits
        group = Topics.of(self._settings).ingest_group
        reader = Consumer(consumer_config(self._settings, group, **{"enable.partition.eof": True}))
        records: list[RawRecord] = []
        try:
            reader.assign(
                [TopicPartition(t, p, max(0, end - READ_BACK)) for (t, p), end in ends.items()]
            )
            left, deadline = set(ends), time.monotonic() + SEED_TIMEOUT_S
            while left and time.monotonic() < deadline:
                for msg in reader.consume(500, timeout=0.1):
                    key = cast("Key", (msg.topic(), msg.partition()))
                    if key not in ends:  # an error of no partition
                        continue
                    if msg.error() is None and (msg.offset() or 0) < ends[key]:
                        records.append(_raw(msg))
                    if _done(msg, ends[key]):
                        left.discard(key)
        except KafkaException as exc:
            log.info("input records before the committed offsets not read back: %s", exc)
        finally:
            reader.close()
        return self._router.route(records, int(time.time() * 1000)).newest_ms


def _raw(msg: Any) -> RawRecord:
    return RawRecord(
        msg.topic(), msg.partition(), msg.offset(), msg.key(), msg.value(), msg.headers()
    )


def _done(msg: Any, end: int) -> bool:
    """Whether ``msg`` is the last one to read of its partition (``end``: the committed offset)."""
    error = msg.error()
    if error is not None:
        return bool(error.code() == KafkaError._PARTITION_EOF)
    return bool(msg.offset() >= end - 1)
