"""``engagement simulate``: a population's events for demos, tests and benchmarks.

The model is in :mod:`streams.tools.population` (channels that retain differently, buy-till-you-die
activity with weekly seasonality, win-back); this module writes its events as JSON lines or
produces them to Kafka keyed by user id, optionally paced: one event-time day per
``seconds_per_day`` of wall time, so a replay on the event clock looks live.

``--winback-effect`` runs a win-back campaign on the dormant signals (default
:data:`DEFAULT_WINBACK_EFFECT`): treated users come back for it with that extra probability,
holdout users do not (see :mod:`streams.tools.population`). Give the worker's holdout share and
salt so the simulator picks the same arms.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, BinaryIO

import orjson

from streams.tools.args import iso_date, positive
from streams.tools.population import (
    DAY_MS,
    DEFAULT_CHANNELS,
    Channel,
    SimulationConfig,
    UserPlan,
    plan_users,
    simulate,
)

DEFAULT_WINBACK_EFFECT = 0.2

__all__ = [
    "DEFAULT_CHANNELS",
    "DEFAULT_WINBACK_EFFECT",
    "Channel",
    "PublishStats",
    "SimulationConfig",
    "UserPlan",
    "add_simulate_parser",
    "plan_users",
    "publish_simulation",
    "simulate",
    "write_jsonl",
]


@dataclass(slots=True)
class PublishStats:
    """What :func:`publish_simulation` did."""

    published: int = 0
    failed: int = 0
    days: int = 0
    last_error: str = ""


def write_jsonl(events: Iterable[dict[str, Any]], out: BinaryIO, batch: int = 10_000) -> int:
    """JSON lines (orjson), in batches; the number of events written."""
    count = 0
    lines: list[bytes] = []
    for event in events:
        lines.append(orjson.dumps(event))
        if len(lines) >= batch:
            out.write(b"\n".join(lines) + b"\n")
            count += len(lines)
            lines.clear()
    if lines:
        out.write(b"\n".join(lines) + b"\n")
        count += len(lines)
    out.flush()
    return count


def publish_simulation(
    events: Iterable[dict[str, Any]],
    producer: Any,
    topic: str,
    *,
    seconds_per_day: float | None = None,
    stop: threading.Event | None = None,
    on_day: Callable[[int, PublishStats], None] | None = None,
) -> PublishStats:
    """Produce ``events`` keyed by user id; paced to one event-time day per ``seconds_per_day``.

    ``producer`` is a confluent-kafka Producer (``streams.kafka.producer_config``). Each day is
    flushed before the next one starts; ``on_day(day, stats)`` is called after each day's flush
    (day = days since the epoch). ``stop`` ends early (between events).
    """
    stats = PublishStats()
    stop = stop or threading.Event()

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            stats.failed += 1
            stats.last_error = str(err)

    started = time.monotonic()
    current: int | None = None
    first: int | None = None
    for event in events:
        day = int(event["timestamp"]) // DAY_MS
        if day != current:
            if current is not None:
                _end_day(producer, stats, current, on_day)
            first = day if first is None else first
            current = day
            if seconds_per_day and stop.wait(
                max(0.0, started + (day - first) * seconds_per_day - time.monotonic())
            ):
                break
        if stop.is_set():
            break
        _produce(producer, topic, event, delivered)
        stats.published += 1
    if current is not None:
        _end_day(producer, stats, current, on_day)
    return stats


def _produce(producer: Any, topic: str, event: dict[str, Any], callback: Any) -> None:
    key, value = event["user_id"].encode(), orjson.dumps(event)
    while True:
        try:
            producer.produce(topic, key=key, value=value, on_delivery=callback)
            return
        except BufferError:  # the local queue is full: let deliveries drain
            producer.poll(0.1)


def _end_day(
    producer: Any, stats: PublishStats, day: int, on_day: Callable[[int, PublishStats], None] | None
) -> None:
    remaining = producer.flush(60)
    stats.failed += remaining
    stats.days += 1
    if on_day is not None:
        on_day(day, stats)


# -- command line ----------------------------------------------------------------------------
def config_from_args(args: argparse.Namespace) -> SimulationConfig:
    return SimulationConfig(
        users=args.users,
        days=args.days,
        start=args.start,
        seed=args.seed,
        winback_share=args.winback_share,
        close_partitions=args.close_partitions,
        winback_effect=args.winback_effect,
        holdout_share=args.holdout_share,
        holdout_salt=args.holdout_salt,
        onboarding=args.onboarding,
    )


def simulate_command(args: argparse.Namespace) -> int:
    """``engagement simulate``: JSON lines to a file or stdout, or events to Kafka."""
    config = config_from_args(args)
    began = time.monotonic()
    if args.out:
        if args.out == "-":
            count = write_jsonl(simulate(config), sys.stdout.buffer)
        else:
            with open(args.out, "wb") as out:
                count = write_jsonl(simulate(config), out)
        took = time.monotonic() - began
        print(f"{count} events of {config.users} users in {took:.1f}s", file=sys.stderr)
        return 0
    from confluent_kafka import Producer

    from streams.kafka import check_brokers, producer_config
    from streams.settings import Settings

    settings = Settings.from_env_or_exit()
    check_brokers(settings)
    topic = args.topic or settings.input_topic
    pace = args.seconds / config.days if args.seconds else None
    stats = publish_simulation(
        simulate(config), Producer(producer_config(settings)), topic, seconds_per_day=pace
    )
    took = time.monotonic() - began
    print(
        f"{stats.published} events of {config.users} users to {topic} in {took:.1f}s"
        f" ({stats.failed} failed{': ' + stats.last_error if stats.failed else ''})",
        file=sys.stderr,
    )
    return 0 if stats.failed == 0 else 1


def add_simulate_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``engagement simulate`` on an ``add_subparsers()`` object."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "simulate",
        help="generate a realistic population's events (to Kafka, a file or stdout)",
        description="Generate a realistic, seeded population's events: acquisition channels "
        "that retain differently, habits with weekly seasonality, drop-outs and win-backs. "
        "Writes JSON lines to a file or stdout (--out), or publishes them to the input topic "
        "keyed by user id, optionally paced to look live (--seconds).",
    )
    parser.add_argument("--users", type=positive, default=2_000, help="users (2000)")
    parser.add_argument("--days", type=positive, default=60, help="days (60)")
    parser.add_argument("--seed", type=int, default=7, help="random seed (7)")
    parser.add_argument(
        "--start", type=iso_date, default=None, help="day 0, YYYY-MM-DD (default: D days ago)"
    )
    parser.add_argument(
        "--winback-share", type=float, default=0.25, help="share of lapsed users who come back"
    )
    parser.add_argument("--out", default=None, help="write JSON lines here (- for stdout)")
    parser.add_argument("--topic", default=None, help="default: ENGAGEMENT_INPUT_TOPIC")
    parser.add_argument("--seconds", type=float, default=None, help="play the days over M s")
    parser.add_argument(
        "--close-partitions", type=int, default=0, help="end with one event per partition"
    )
    parser.add_argument(
        "--winback-effect",
        type=float,
        default=DEFAULT_WINBACK_EFFECT,
        help="chance a treated dormant user comes back for the campaign (0: no campaign)",
    )
    parser.add_argument("--holdout-share", type=float, default=0.1, help="as the worker's")
    parser.add_argument("--holdout-salt", default="engagement", help="as the worker's")
    parser.add_argument(
        "--onboarding",
        action="store_true",
        help="first days start with the onboarding funnel (signup, profile_completed, "
        "first_value), each channel dropping off differently",
    )
    parser.set_defaults(func=simulate_command)
    return parser
