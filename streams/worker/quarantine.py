"""The activity stage's two ways out for what it cannot fold: quarantine, or stop.

* An ``events.by_user`` record that cannot be read (:func:`streams.worker.codecs.decode_batch`
  raised :class:`~schemas.errors.BatchDecodeError`) goes whole — key, value, headers — to
  ``<prefix>.events.by_user.quarantine`` with the ``engagement.error.*`` headers of the
  dead-letter topic (reason from :class:`~streams.worker.codecs.BatchReason`, message, source
  topic, partition, offset, timestamp); none of its events was folded, and the partition moves
  on. A topic of its own, not ``<prefix>.dead_letter``: dead letters are *input* to re-publish
  to the input topic after a fix, quarantined records are internal batches to re-publish to
  ``events.by_user`` (typically after upgrading the workers), and their offsets are by_user
  offsets, which the dead-letter books would mistake for input offsets.
* What cannot be handled safely (a stored state or meta record that cannot be decoded, a group
  of changes that cannot be made durable, a fold that raises) stops the worker at once:
  :func:`hard_exit` logs one message naming topic, partition and offset, and ends the process
  with :data:`EXIT_FAIL_STOP` without acknowledging anything more. Not Faust's graceful stop:
  it would try to make the failed group durable again, wait for records that will never be
  acknowledged and swallow exceptions raised in its recovery callbacks. A hard exit is the
  crash the pipeline already recovers from (input after the last commit is read again).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any

from agents.logic.ingest import error_headers
from agents.logic.meta import META_KEY
from agents.logic.returns import is_counts_key
from schemas.errors import BatchDecodeError, StateDecodeError
from streams.exits import FAIL_STOP
from streams.settings import Settings
from streams.worker.delivery import Sink
from streams.worker.metrics import Metrics

log = logging.getLogger(__name__)
EXIT_FAIL_STOP = FAIL_STOP  # 70, EX_SOFTWARE: the orchestrator restarts the worker


class Quarantine:
    """Sends unreadable by_user records to the quarantine topic and counts them."""

    def __init__(self, topic: str, deliverer: Sink, metrics: Metrics) -> None:
        self.topic = topic
        self.deliverer = deliverer
        self.metrics = metrics

    async def put(self, message: Any, error: BatchDecodeError) -> None:
        """Deliver ``message`` (a Faust message) unchanged plus error headers; returns once
        Kafka has it, so the caller may acknowledge it."""
        log.warning(
            "quarantined %s[%d]@%d (%s)",
            message.topic,
            message.partition,
            message.offset,
            error,
        )
        headers = error_headers(
            list(message.headers or []),
            error.reason,
            error.message,
            message.topic,
            message.partition,
            message.offset,
            int(time.time() * 1000),
        )
        self.deliverer.produce(self.topic, message.key, message.value, -1, headers)
        await self.deliverer.flush("dead_letter")  # retries counted with the dead letters'
        self.metrics.quarantined.labels(error.reason).inc()


def hard_exit(reason: str) -> None:
    """Log ``reason`` and end the process now with :data:`EXIT_FAIL_STOP` (see module doc)."""
    log.critical("stopping the worker: %s", reason)
    print(f"engagement: stopping the worker: {reason}", file=sys.stderr, flush=True)
    logging.shutdown()
    os._exit(EXIT_FAIL_STOP)


def last_offset_of(settings: Settings, topic: str, partition: int, key: bytes) -> int | None:
    """Offset of the newest record of ``key`` in ``topic[partition]`` (None if not found or
    the topic cannot be read): on the way to a fail-stop only, to name the record."""
    from streams.worker.changelog import read_partitions

    found: list[int] = []

    def apply(message: Any) -> None:
        if message.key() == key:
            found.append(message.offset())

    try:
        read_partitions(settings, topic, {partition: -2}, apply, timeout=10.0)
    except Exception:  # the message says "offset unknown" instead
        log.exception("could not look up the offset of the unreadable record")
        return None
    return found[-1] if found else None


def unreadable_state(topic: str, number: int, offset: int | None, exc: StateDecodeError) -> str:
    """The fail-stop message for a changelog record that cannot be decoded (no user id in it:
    the offset finds the record)."""
    key = exc.key or b""
    what_text = (
        "the partition's meta record"
        if key == META_KEY
        else "a record of the partition's return counts"
        if is_counts_key(key)
        else "a user state"
    )
    at = f"offset {offset}" if offset is not None else "offset unknown"
    return (
        f"cannot take over partition {number}: {what_text} in {topic} partition {number} at {at} "
        f"cannot be read: {exc.message}. Nothing of partition {number} is acknowledged. "
        f"Produce a valid value for that record's key to {topic} partition {number}, or run a "
        f"release that reads it, then restart"
    )
