"""activity: ``events.by_user`` (user_id -> batch of Events) -> user state + partition aggregates.

Thin: each Faust message is a batch of one partition's events; the runtime folds it through the
pure engine and acks the message only once the state and signals it produced are durable (in
groups, see :meth:`streams.worker.runtime.Runtime.finish_groups`), so Faust's commit never
runs ahead of the state it produced.
"""

from __future__ import annotations

import functools
import logging
import time
from typing import Any

import faust

from agents.logic.dead_letters import fit_dead_letter
from agents.logic.ingest import IngestLimits, dead_letter_headers, ingest
from schemas.records import Event
from streams.worker.metrics import Metrics
from streams.worker.runtime import Runtime

log = logging.getLogger(__name__)


def register(app: faust.App, topic: Any, runtime: Runtime) -> Any:
    """The activity agent over the internal batch topic."""

    @app.agent(topic, name="activity", concurrency=1)
    async def activity(stream: Any) -> None:
        records = stream.noack()  # acked by the runtime once their output is durable
        async for event in records.events():
            message = event.message
            ack = functools.partial(records.ack, event)
            try:
                await runtime.on_batch(message.partition, message.value, ack, message.offset)
            except ValueError:
                log.exception(
                    "malformed record at %s[%d]@%d skipped",
                    message.topic,
                    message.partition,
                    message.offset,
                )
                await ack()

    return activity


def register_direct(
    app: faust.App, topic: Any, runtime: Runtime, limits: IngestLimits, metrics: Metrics
) -> Any:
    """ENGAGEMENT_INPUT_KEYED_BY_USER: ingest and fold straight from the input topic, one
    event per Faust message (no re-keying hop)."""
    dead_letter = runtime.topics.dead_letter

    @app.agent(topic, name="activity_direct", concurrency=1)
    async def activity_direct(stream: Any) -> None:
        records = stream.noack()
        async for event in records.events():
            message = event.message
            ack = functools.partial(records.ack, event)
            now = int(time.time() * 1000)
            headers = list(message.headers or [])
            metrics.consumed.inc()
            result = ingest(message.value, headers, now, limits)
            if isinstance(result, Event):
                metrics.count_valid(result.event_type)
                await runtime.on_events(message.partition, [result], ack=ack)
                continue
            metrics.invalid.labels(result.reason.value).inc()
            key, value, dead_headers = fit_dead_letter(
                message.key,
                message.value,
                dead_letter_headers(
                    headers, result, message.topic, message.partition, message.offset, now
                ),
                limits.max_record_bytes,
                limits.max_message_bytes,
            )
            runtime.deliverer.produce(dead_letter, key, value, -1, dead_headers)
            await runtime.deliverer.flush("dead_letter")
            metrics.dead_lettered.inc()
            await ack()

    return activity_direct
