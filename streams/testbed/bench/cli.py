"""``engagement bench``: engagement-stream side by side with the raw limit, Quix Streams with
state and naive Faust.

engagement bench [--events N] [--users N] [--partitions P] [--users-large N] [--skip-large]
                 [--naive-events N] [--naive-seconds S] [--quix-python PATH] [--profile]
                 [--kafka-data DIR] [--out DIR]

Starts Apache Kafka (as the tests do), produces the simulated data set once, then measures in
turn: one engagement worker, the raw confluent-kafka loop, Quix Streams with state (when its
virtual environment is there), the naive Faust agent (on a prefix), two engagement workers,
latency to a signal, and (unless --skip-large) deadline delay, memory and recovery with
--users-large tracked users. Writes bench/results/<UTC time>.json and .md.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

DEFAULT_OUT = Path("bench/results")
DEFAULT_QUIX_PYTHON = Path(".venv-quix/bin/python")
DESCRIPTION = (
    "Start Apache Kafka (as the tests do), produce a simulated data set once, then measure in "
    "turn: one engagement worker, the raw confluent-kafka loop, Quix Streams with state, the "
    "naive Faust agent (on a prefix), two engagement workers, latency to a signal, and "
    "(unless --skip-large) deadline delay, memory and recovery with --users-large tracked "
    "users. Writes bench/results/<UTC time>.json and .md."
)


def add_bench_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``engagement bench`` on an ``add_subparsers()`` object."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "bench",
        help="benchmark against the raw-client limit, Quix Streams and a naive Faust agent",
        description=DESCRIPTION,
    )
    add = parser.add_argument
    add("--events", type=int, default=2_000_000, help="events in the data set")
    add("--users", type=int, default=200_000, help="users in the data set")
    add("--partitions", type=int, default=8)
    add("--users-large", type=int, default=1_000_000, help="tracked users for the large phase")
    add("--skip-large", action="store_true", help="no deadline-delay / memory / recovery phase")
    add("--skip-scale-out", action="store_true", help="no two-worker run")
    add("--naive-events", type=int, default=100_000, help="prefix the naive agent is timed on")
    add("--naive-seconds", type=float, default=60.0, help="or at most this long")
    add("--latency-users", type=int, default=10_000)
    add("--latency-rate", type=float, default=2_000.0, help="return events per second")
    add("--deadline-users", type=int, default=20_000, help="users whose deadlines are timed")
    add("--deadline-rate", type=float, default=1_000.0, help="their arrivals per second")
    add("--profile", action="store_true", help="sample a worker with py-spy; top functions")
    add("--profile-seconds", type=float, default=20.0)
    add(
        "--quix-python", type=Path, default=DEFAULT_QUIX_PYTHON,
        help="Python of the Quix Streams environment (made by make bench); absent: not run",
    )  # fmt: skip
    add("--out", type=Path, default=DEFAULT_OUT, help="folder of the reports")
    add("--kafka-lib", type=Path, default=None, help="Apache Kafka jars (default: as the tests)")
    add(
        "--kafka-data", type=Path, default=None,
        help="folder to keep the broker's data in (default: its temporary work folder); one on "
        "tmpfs, such as /dev/shm, takes the disk out of the figures",
    )  # fmt: skip
    parser.set_defaults(func=bench_command)
    return parser


def bench_command(args: argparse.Namespace) -> int:
    """Run the benchmark (heavy imports here, so that ``engagement --help`` stays fast)."""
    import errno

    from streams.testbed.bench.run import run_bench
    from streams.testbed.brokers import kafka_jars_present

    if args.kafka_lib is not None and not kafka_jars_present(args.kafka_lib):
        raise FileNotFoundError(errno.ENOENT, "no Apache Kafka jars there", str(args.kafka_lib))
    if args.kafka_data is not None and not args.kafka_data.is_dir():
        raise FileNotFoundError(errno.ENOENT, "--kafka-data: no such folder", str(args.kafka_data))
    return run_bench(args)
