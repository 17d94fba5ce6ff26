"""The ingest step alone, as the ingest process runs it: instructions or CPU per input event.

``python -m streams.testbed.bench.ingest_only [--events N --users U] [--instructions]`` builds
the bench's simulated input (each event ``orjson.dumps``-ed and keyed by its user, as ``make
bench`` produces it) as confluent-kafka ``Message`` objects, in runs per input partition as
``Consumer.consume`` returns them, and passes batches of ``--batch`` through what
:meth:`~streams.worker.ingest.IngestService.step` does per batch: the router's
``route_messages`` (decode, shape, validate, key, group) and
:func:`~streams.worker.ingest.by_user_records`, the records it produces. No broker, no
watermarks, no producer. The garbage collector is set as in the ingest process, after the
messages are built.

Each run hashes the records it would produce (by_user keys and values, dead letters): two
checkouts whose digests agree forward the same bytes.

``--instructions`` runs the child under valgrind twice, once without the ingest calls
(:func:`~streams.testbed.bench.engine_only.counted`); the difference is the ingest step's
instructions per event, a figure that repeats however busy the machine is.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from typing import Any

from streams.testbed.bench.engine_only import VALGRIND, counted

INPUT = "user.events"
WATERMARK_MS = 1_000  # the clocks every record carries: any fixed values do
FRONTIER_MS = 2_000


def _messages(count: int, users: int, partitions: int) -> list[Any]:
    """The input as Messages, grouped in runs per input partition (its keys' murmur2), offsets
    counted per partition."""
    import orjson
    from confluent_kafka import TIMESTAMP_CREATE_TIME, Message

    from agents.logic.partitioning import partition_for
    from streams.testbed.bench.data import simulated_events

    stream, _ = simulated_events(count, users)
    runs: dict[int, list[Any]] = {}
    for event in stream:
        key = event["user_id"].encode()
        part = partition_for(key, partitions)
        run = runs.setdefault(part, [])
        stamp = (TIMESTAMP_CREATE_TIME, event["timestamp"])
        value = orjson.dumps(event)
        run.append(Message(INPUT, part, len(run), key, value, None, timestamp=stamp))
    return [message for part in sorted(runs) for message in runs[part]]


def run(
    count: int,
    users: int,
    partitions: int,
    batch: int,
    *,
    calls: bool = True,
    hashing: bool = True,
) -> dict[str, Any]:
    """Route and encode the input; the figures and a digest of the records it would produce.
    ``calls=False``: everything but the ingest calls (the instruction count's baseline)."""
    from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, KafkaError

    import agents.logic
    from agents.logic.funnels import PropertySteps
    from streams.settings import Settings
    from streams.worker.gc_tuning import tune_gc
    from streams.worker.ingest import by_user_records, ingest_router

    settings = Settings.from_env({})  # the defaults: the environment is not read
    router, steps = ingest_router(settings), PropertySteps.of(settings.funnels)
    max_bytes, clocks = settings.record_max_bytes, (WATERMARK_MS, FRONTIER_MS)
    messages = _messages(count, users, partitions)
    now_ms = max(m.timestamp()[1] for m in messages) + 60_000
    digest, records, dead, cpu = hashlib.sha256(), 0, 0, 0.0
    tune_gc()  # as the ingest process does once start-up is done
    for start in range(0, len(messages) if calls else 0, batch):
        began = time.process_time()
        routed = router.route_messages(
            messages[start : start + batch],
            now_ms,
            end_code=KafkaError._PARTITION_EOF,
            no_timestamp=TIMESTAMP_NOT_AVAILABLE,
        )
        out = list(by_user_records(routed, (clocks, clocks), "ingest_only", max_bytes, steps))
        cpu += time.process_time() - began
        records, dead = records + len(out), dead + len(routed.dead)
        if hashing:
            for _, key, value in out:
                digest.update(b"%d\0%s\0%s\0" % (len(key), key, value))
            for letter in routed.dead:
                digest.update(b"dead\0%s\0" % (letter.value or b"-"))
    return {
        "compiled": agents.logic.compiled(),
        "events": len(messages),
        "records": records,
        "dead_letters": dead,
        "cpu_s": cpu,
        "digest": digest.hexdigest() if hashing else "",
    }


def _child_argv(args: argparse.Namespace, *extra: str) -> list[str]:
    module = "streams.testbed.bench.ingest_only"
    sizes = [
        f"--events={args.events}",
        f"--users={args.users}",
        f"--partitions={args.partitions}",
        f"--batch={args.batch}",
    ]
    return [sys.executable, "-m", module, "--child", *sizes, *extra]


def _measure(args: argparse.Namespace) -> dict[str, Any]:
    if args.instructions:
        measured = _child_argv(args, "--no-hash")
        return counted(measured, [*measured, "--no-ingest"], dict(os.environ))
    done = subprocess.run(_child_argv(args), stdout=subprocess.PIPE, text=True, check=True)
    figures: dict[str, Any] = json.loads(done.stdout)
    return figures


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.child:
        calls, hashing = not args.no_ingest, not args.no_hash
        sizes = args.events, args.users, args.partitions, args.batch
        print(json.dumps(run(*sizes, calls=calls, hashing=hashing)))
        return 0
    if args.instructions and shutil.which(VALGRIND[0]) is None:
        print("--instructions needs valgrind (apt-get install valgrind)")
        return 2
    r = _measure(args)
    counts = (
        f"({r['events']:,} events, {r['records']:,} by_user records, "
        f"{r['dead_letters']:,} dead letters, running compiled: {r['compiled']})"
    )
    if args.instructions:
        print(f"{r['instructions'] / r['events']:,.0f} instructions per event  {counts}")
    else:
        per_million = r["cpu_s"] / r["events"] * 1e6
        print(f"{per_million:.2f} CPU-s per 1M events  {counts}  sha256 {r['digest'][:16]}...")
    if not r["compiled"]:
        print("the compiled core is not in use (see the warning above): run `make compiled`")
        return 1
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m streams.testbed.bench.ingest_only")
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--partitions", type=int, default=8, help="of the input topic")
    parser.add_argument("--batch", type=int, default=2_000, help="input messages per step")
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="count the ingest step's instructions under valgrind instead of timing it",
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--no-ingest", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--no-hash", action="store_true", help=argparse.SUPPRESS)
    return parser


if __name__ == "__main__":
    raise SystemExit(main())
