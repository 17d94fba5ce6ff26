"""The benchmark run behind ``engagement bench`` (see :mod:`streams.testbed.bench.cli`): start
Kafka, produce the data set, run every phase, write the report."""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streams.testbed.bench.data import create_topics, produce_dataset, say
from streams.testbed.bench.live import measure_large, measure_latency
from streams.testbed.bench.measure import load_average, machine_description
from streams.testbed.bench.phases import (
    Context,
    measure_engagement,
    measure_naive,
    measure_quix_state,
    measure_raw,
)
from streams.testbed.bench.profiled_run import profile_engagement
from streams.testbed.bench.report import (
    SystemRun,
    build_report,
    ratio,
    render_markdown,
    write_report,
)

if TYPE_CHECKING:
    from streams.testbed.brokers import KafkaBroker


def run_bench(args: argparse.Namespace) -> int:
    from streams.testbed.brokers import (
        default_kafka_lib,
        fetch_kafka_jars,
        kafka_jars_present,
        kafka_version,
    )

    lib = args.kafka_lib or default_kafka_lib()
    if not kafka_jars_present(lib):
        say(f"fetching Apache Kafka's jars into {lib}")
        fetch_kafka_jars(lib)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    workdir = Path(tempfile.mkdtemp(prefix="engagement-bench-"))
    say(f"starting Apache Kafka {kafka_version()} (work dir {workdir})")
    broker = start_kafka(lib, args.kafka_data)
    try:
        report = run_phases(args, broker, workdir, stamp, kafka_version())
    except BaseException:
        say(f"failed; the workers' logs are kept in {workdir}")
        raise
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    finally:
        broker.stop()
        if args.kafka_data is not None:
            shutil.rmtree(broker.log_dir, ignore_errors=True)
    json_path, md_path = write_report(report, args.out, stamp)
    print(render_markdown(report))
    say(f"report: {json_path} and {md_path}")
    return 0


def start_kafka(lib: Path, data_parent: Path | None = None, attempts: int = 3) -> Any:
    """A started KafkaBroker; a new port on each attempt (a port taken meanwhile). Its data is
    in its own temporary folder, or in a new folder under ``data_parent``."""
    from schemas.errors import BrokerError
    from streams.testbed.brokers import KafkaBroker

    for attempt in range(1, attempts + 1):
        log_dir = None
        if data_parent is not None:
            log_dir = Path(tempfile.mkdtemp(prefix="engagement-bench-kafka-", dir=data_parent))
        broker = KafkaBroker(lib, log_dir=log_dir)
        try:
            broker.start()
            return broker
        except BrokerError as exc:
            broker.stop()
            if log_dir is not None:  # a folder of our own under data_parent: not left behind
                shutil.rmtree(log_dir, ignore_errors=True)
            if attempt == attempts:
                raise
            say(f"Kafka did not start ({str(exc).splitlines()[0]}); trying again")
    raise AssertionError("unreachable")


def run_phases(
    args: argparse.Namespace, broker: KafkaBroker, workdir: Path, stamp: str, kafka: str
) -> dict[str, Any]:
    began = time.monotonic()
    extra: dict[str, Any] = {"load_average_1m_at_start": load_average()}
    bootstrap, run_id = broker.bootstrap, uuid.uuid4().hex[:6]
    topic = f"bench-{run_id}-input"
    create_topics(bootstrap, [topic], args.partitions)
    data = produce_dataset(bootstrap, topic, args.events, args.users)
    ctx = Context(
        bootstrap, run_id, args.partitions, topic, data.events, workdir, broker_pid=broker.pid
    )
    # The first reader of the new input paid for the broker's warm-up (the JIT compiling its
    # fetch path, ~5 % of the machine): in three runs of one worker in a row on one data set,
    # 43,331 -> 48,544 -> 53,754 events/s, and 57,719 -> 57,059 -> 49,828 after a raw pass
    # (one series each, 2026-12-05, on a noisy shared machine).
    # So one raw pass, not reported, reads it first, and the first system measured is not
    # the one that pays.
    extra["warm_up_s"] = round(measure_raw(ctx, "warm-up").wall_s, 1)
    engagement = measure_engagement(ctx, "engagement")
    one_process = measure_engagement(ctx, "engagement-one-process", ingest_process="false")
    raw = measure_raw(ctx)
    quix_state = measure_quix_state(ctx, args.quix_python)
    naive = measure_naive(ctx, args.naive_events, args.naive_seconds)
    scale = None
    if not args.skip_scale_out:
        # One worker with its ingest process already keeps both cores of the bench machine
        # busy; scale-out is measured with one-process workers, against the one-process run.
        two = measure_engagement(ctx, "scale-out", count=2, ingest_process="false")
        scale = ratio(two.events_per_s, one_process.events_per_s)
        extra["two_workers"] = two.to_json()
    profile = profile_engagement(ctx, args.profile_seconds) if args.profile else None
    latency = measure_latency(ctx, args.latency_users, args.latency_rate, args.profile)
    large = None
    if not args.skip_large:
        large = measure_large(ctx, args.users_large, args.deadline_users, args.deadline_rate)
        extra["large_load_events_per_s"] = round(large.load_events_per_s, 1)
    extra["bench_seconds"] = round(time.monotonic() - began, 1)
    return build_report(
        created_utc=stamp,
        machine=machine_description(kafka, broker.log_dir),
        dataset={
            "events": data.events,
            "users": data.users,
            "days_simulated": data.days,
            "partitions": args.partitions,
            "users_large": None if large is None else large.bytes_per_user["users"],
        },
        systems={
            "engagement": engagement,
            "engagement_one_process": one_process,
            "raw_limit": raw,
            "quix_state": quix_state,
            "naive_faust": naive,
        },
        latency_ms=latency,
        deadline_delay_ms=None if large is None else large.deadline_delay_ms,
        bytes_per_user=None if large is None else large.bytes_per_user,
        recovery_s=None if large is None else large.recovery_s,
        scale_out_2_workers_ratio=scale,
        profile=profile,
        extra=extra,
        notes=[*_notes(naive, args), *ctx.notes],
    )


def _notes(naive: SystemRun, args: argparse.Namespace) -> list[str]:
    notes = [
        "CPU seconds: utime+stime of /proc/<pid>/stat (all threads) of the measured process; "
        "the Kafka broker (same machine) is not counted.",
        "engagement: timed from the first input event read to the last first-time fold (once "
        "folded+duplicates == input count; polling /metrics?name[]= for those counters only "
        "every 0.05-0.25 s); raw limit and "
        "Quix Streams with state: from their first message to their last (Quix Streams on its "
        "defaults, in its own virtual environment from bench/quix-requirements.txt).",
        "warm-up: before the first measured system, the raw loop reads the whole input "
        "once (not reported; extra.warm_up_s), so that no system pays for a cold broker.",
        f"naive Faust: timed on {naive.events:,} events (first {args.naive_events:,} or "
        f"{args.naive_seconds:.0f} s); its events/s is assumed to hold for the whole input.",
    ]
    if not args.skip_scale_out:
        notes.append(
            "scale-out: both runs timed like the others, from the first input event read to "
            "the last first-time fold (two workers: their rebalance included; duplicates "
            "re-read after it are not counted; see extra.two_workers)."
        )
    if args.skip_large:
        notes.append("--skip-large: no deadline delay, memory or recovery figures.")
    else:
        notes.append(
            "deadline delay: the timed users arrive at a steady rate while --users-large "
            "users (due 12 h later) are tracked; delay = processed_at_ms - event_time_ms."
        )
    return notes
