"""activity: ``events.by_user`` (user_id -> batch of Events) -> user state + partition aggregates.

Thin: each Faust message is a batch of one partition's events; the runtime decodes it whole,
folds it through the pure engine and acks the message only once the state and signals it
produced are durable (in groups, see :meth:`streams.worker.runtime.Runtime.finish_groups`), so
Faust's commit never runs ahead of the state it produced. A record that cannot be read goes to
the quarantine topic unfolded (:mod:`streams.worker.quarantine`).
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
    """The activity agent over the internal batch topic. Nothing raises out of it: an
    unreadable record is quarantined, anything unsafe stops the worker
    (:meth:`Runtime.on_record`), since Faust would acknowledge a record whose agent raised."""

    @app.agent(topic, name="activity", concurrency=1)
    async def activity(stream: Any) -> None:
        records = stream.noack()  # acked by the runtime once their output is durable
        async for event in records.events():
            await runtime.on_record(event.message, functools.partial(records.ack, event))

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
                partition, offset = message.partition, message.offset
                try:
                    await runtime.on_events(partition, [result], ack=ack, offset=offset)
                except Exception as exc:  # Faust would ack it: stop instead
                    runtime.fail_stop(f"folding {message.topic}[{partition}]@{offset}: {exc!r}")
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
