"""The raw limit: a plain confluent-kafka batch-consume loop, no Faust, no Kafka output.

It does what engagement-stream does to every event before the state is durable, as cheaply as
Python allows: decode + shape + JSON Schema validation (:func:`agents.logic.ingest.ingest`) and
the state fold (:func:`agents.logic.fold.fold` / :func:`~agents.logic.fold.new_state`) into an
in-memory dict of ``UserState``. Run as a child process (``python -m streams.testbed.bench.raw``) so
that its CPU time is read from ``/proc/<pid>/stat`` like the worker's; it prints one JSON line.

The clock starts at the first message received (group join and start-up left out) and stops
when ``--expect`` messages were handled.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

import orjson
from confluent_kafka import Consumer

from agents.logic.days import Calendar
from agents.logic.fold import FoldConfig, fold, new_state
from agents.logic.ingest import IngestLimits, ingest
from agents.logic.state import UserState
from schemas.records import Event
from streams.settings import Settings
from streams.testbed.bench.measure import cpu_seconds
from streams.worker.gc_tuning import tune_gc
from streams.worker.ingest import ingest_limits

BATCH = 2000


def fold_config(settings: Settings) -> FoldConfig:
    """The fold configuration the worker builds (``streams.worker.engine_setup.engine_config``)."""
    return FoldConfig.build(
        Calendar(settings.timezone), settings.horizon_days, settings.channels, settings.categories
    )


def fold_batch(
    messages: Sequence[Any],
    states: dict[str, UserState],
    config: FoldConfig,
    now_ms: int,
    limits: IngestLimits,
) -> int:
    """Ingest and fold one batch; the number of records (errors and EOF markers excluded)."""
    day_of = config.calendar.day_of
    handled = 0
    for msg in messages:
        if msg.error() is not None:
            continue
        handled += 1
        event = ingest(msg.value(), msg.headers(), now_ms, limits)
        if not isinstance(event, Event):
            continue
        day = day_of(event.timestamp_ms)
        state = states.get(event.user_id)
        if state is None:
            states[event.user_id] = new_state(event, day, config)
        else:
            fold(state, event, day, config)
    return handled


def run(bootstrap: str, topic: str, group: str, expect: int, timeout: float) -> dict[str, Any]:
    settings = Settings.from_env({})
    config = fold_config(settings)
    tune_gc()  # as the worker does (streams.worker.gc_tuning)
    limits = ingest_limits(settings)
    client = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "fetch.max.bytes": 64 * 1024 * 1024,
        }
    )
    client.subscribe([topic])
    states: dict[str, UserState] = {}
    handled, first_at, first_cpu = 0, 0.0, 0.0
    deadline = time.monotonic() + timeout
    while handled < expect and time.monotonic() < deadline:
        messages = client.consume(BATCH, timeout=0.5)
        if not messages:
            continue
        if not first_at:
            first_at, first_cpu = time.monotonic(), cpu_seconds_self()
        handled += fold_batch(messages, states, config, int(time.time() * 1000), limits)
    wall = time.monotonic() - first_at if first_at else 0.0
    cpu = cpu_seconds_self() - first_cpu
    client.close()
    return {"events": handled, "wall_s": wall, "cpu_s": cpu, "users": len(states)}


def cpu_seconds_self() -> float:
    return cpu_seconds(os.getpid())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m streams.testbed.bench.raw", description=__doc__
    )
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--expect", type=int, required=True)
    parser.add_argument("--timeout", type=float, default=1800.0)
    args = parser.parse_args(argv)
    result = run(args.bootstrap, args.topic, args.group, args.expect, args.timeout)
    sys.stdout.write(orjson.dumps(result).decode() + "\n")
    return 0 if result["events"] >= args.expect else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
