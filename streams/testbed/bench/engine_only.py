"""The engine alone, pure Python against compiled by mypyc: events/s and CPU per event.

``python -m streams.testbed.bench.engine_only [--events N --users U]`` folds the same simulated
events through an :class:`~agents.logic.engine.Engine` once per path, each in a subprocess of
its own (``ENGAGEMENT_PURE_PYTHON=1`` for the pure one), as the worker does: batches cut in
arrival order and split by partition, then ``take_changes`` and ``mark_durable`` into in-memory
stores (so states are encoded, and decoded again on a user's next batch). No broker, no Faust.

The garbage collector is set as in the worker (:func:`~streams.worker.gc_tuning.tune_gc`),
after the events are built. Only the engine's calls are timed (CPU time of the process);
building the events is not. Each run hashes every signal and changelog record it produced: the
two paths must agree bit for bit.

``--behind-days D`` folds them as a wall-clock worker does that starts ``D`` days after the last
event (a first start on history, or a catch-up after an outage): every deadline and return lies
in the past, and the signals older than ``ENGAGEMENT_SIGNAL_MAX_AGE`` (2 days) are counted as
suppressed instead of delivered.

``--setting NAME=VALUE`` (repeatable) sets an ``ENGAGEMENT_*`` setting of the engine, say
``--setting ENGAGEMENT_DORMANT_AFTER=300d`` to move deadlines out of the data's reach; the
process environment is not read, so a stray variable cannot change a measurement.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import time
from typing import Any

import orjson

PURE_ENV = "ENGAGEMENT_PURE_PYTHON"


def _events(count: int, users: int) -> list[Any]:
    from schemas.records import Event
    from streams.testbed.bench.data import simulated_events

    stream, _ = simulated_events(count, users)
    return [
        Event(
            e["event_id"],
            e["user_id"],
            e["event_type"],
            e["timestamp"],
            e.get("channel"),
            e.get("platform"),
            e.get("session_id"),
            e.get("properties"),
        )
        for e in stream
    ]


def run(
    count: int,
    users: int,
    partitions: int,
    batch: int,
    behind_days: float | None = None,
    *,
    settings: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Fold the events through one engine; the figures and a digest of what came out."""
    import agents.logic
    from agents.logic.engine import Engine
    from agents.logic.partitioning import partition_for
    from streams.settings import Settings
    from streams.worker.engine_setup import engine_config

    events = _events(count, users)
    from streams.worker.gc_tuning import tune_gc

    clock = "event" if behind_days is None else "wall"
    config = engine_config(Settings.from_env({**(settings or {}), "ENGAGEMENT_CLOCK": clock}))
    # no ingest here: a wall clock's deadlines do not wait for an input frontier
    engine = Engine(dataclasses.replace(config, frontier=False))
    late_ms = None if behind_days is None else events[-1].timestamp_ms + round(behind_days * 864e5)
    tune_gc()  # as the worker and its ingest process do once start-up is done
    for number in range(partitions):
        engine.assign(number, {})
    keys = {e.user_id: partition_for(e.user_id.encode(), partitions) for e in events}
    digest, signals, suppressed, cpu = hashlib.sha256(), 0, 0, 0.0
    wall = time.perf_counter()
    for start in range(0, len(events), batch):
        chunk = events[start : start + batch]
        by_partition: dict[int, list[Any]] = {}
        for event in chunk:
            by_partition.setdefault(keys[event.user_id], []).append(event)
        wall_ms = chunk[-1].timestamp_ms if late_ms is None else late_ms
        began = time.process_time()
        outputs = [engine.process(n, evs, wall_ms) for n, evs in sorted(by_partition.items())]
        changes = engine.take_changes()
        engine.mark_durable(changes)
        cpu += time.process_time() - began
        for out in outputs:
            suppressed += sum(out.suppressed.values())
            for kind, key, signal in out.signals:
                digest.update(
                    kind.encode() + key + orjson.dumps(signal, option=orjson.OPT_SORT_KEYS)
                )
                signals += 1
        for number, key, value in changes:
            digest.update(b"%d\0%s\0%s\0" % (number, key, value if value is not None else b"-"))
    return {
        "compiled": agents.logic.compiled(),
        "events": len(events),
        "signals": signals,
        "suppressed": suppressed,
        "wall_s": time.perf_counter() - wall,
        "cpu_s": cpu,
        "digest": digest.hexdigest(),
    }


def _child(args: argparse.Namespace, pure: bool) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k != PURE_ENV}
    if pure:
        env[PURE_ENV] = "1"
    argv = [sys.executable, "-m", "streams.testbed.bench.engine_only", "--child", *_sizes(args)]
    done = subprocess.run(argv, env=env, stdout=subprocess.PIPE, text=True, check=True)
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _sizes(args: argparse.Namespace) -> list[str]:
    return [
        f"--events={args.events}",
        f"--users={args.users}",
        f"--partitions={args.partitions}",
        f"--batch={args.batch}",
        *([] if args.behind_days is None else [f"--behind-days={args.behind_days}"]),
        *(f"--setting={item}" for item in args.setting),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m streams.testbed.bench.engine_only")
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--batch", type=int, default=2_000, help="events per poll, all partitions")
    parser.add_argument(
        "--behind-days",
        type=float,
        default=None,
        help="fold on a wall clock this many days after the last event (default: event clock)",
    )
    parser.add_argument(
        "--setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an ENGAGEMENT_* setting of the engine (repeatable; the environment is not read)",
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    settings = dict(item.partition("=")[::2] for item in args.setting)
    if args.child:
        sizes = args.events, args.users, args.partitions, args.batch, args.behind_days
        figures = run(*sizes, settings=settings)
        print(json.dumps(figures))
        return 0
    results = {"pure": _child(args, pure=True), "compiled": _child(args, pure=False)}
    for name, r in results.items():
        print(
            f"{name:>8}: {r['events'] / r['cpu_s']:>9,.0f} events/s  "
            f"{r['cpu_s'] / r['events'] * 1e6:6.2f} CPU-s per 1M events  "
            f"({r['events']:,} events, {r['signals']:,} signals, {r['suppressed']:,} suppressed, "
            f"running compiled: {r['compiled']})"
        )
    pure, fast = results["pure"], results["compiled"]
    print(
        f"   ratio: compiled uses {fast['cpu_s'] / pure['cpu_s']:.2f}x the CPU of pure Python "
        f"({pure['cpu_s'] / fast['cpu_s']:.2f}x the events per CPU-second)"
    )
    if not fast["compiled"]:
        print("the compiled core is not in use (see the warning above): run `make compiled`")
        return 1
    if pure["digest"] != fast["digest"]:
        print("the two paths produced DIFFERENT signals or states")
        return 1
    print(f"same signals and states on both paths (sha256 {pure['digest'][:16]}...)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
