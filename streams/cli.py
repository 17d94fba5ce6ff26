"""``engagement``: the command line of engagement-stream.

engagement worker            run a worker (settings from ENGAGEMENT_* variables)
engagement broker [--port]   run the embedded Tansu broker in the foreground
engagement publish FILE|-    publish JSON lines or CSV events to the input topic
engagement signals           print signals as JSON lines (--kind, --follow, --group)
engagement fit               fit the churn model's parameters (--events FILE | --from-state)
engagement retention         the retention triangle of a running system (--html FILE)
engagement simulate          a realistic population's events (--out FILE|-, or to Kafka)
engagement uplift            treatment vs holdout return rates, always-valid interval
engagement bench             benchmark vs the raw confluent-kafka loop and a naive Faust agent
engagement demo              the whole product on the embedded broker, in about a minute
engagement settings          print every setting with its variable, default and meaning
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Sequence

from schemas.errors import EngagementError, SettingsError
from streams.redaction import mask_secrets
from streams.settings import Settings, describe, markdown_table
from streams.testbed.bench.cli import add_bench_parser
from streams.tools.fit import add_fit_parser
from streams.tools.retention import add_retention_parser
from streams.tools.signals import add_signals_parser
from streams.tools.simulate import add_simulate_parser
from streams.tools.uplift import add_uplift_parser


def cmd_worker(args: argparse.Namespace) -> int:

    from streams.topics import ensure_topics
    from streams.worker.app import EngagementWorker, create_worker
    from streams.worker.gc_tuning import tune_gc
    from streams.worker.ingest import check_record_limit
    from streams.worker.store import require_store

    settings = Settings.from_env_or_exit()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    shown = " ".join(f"{name}={value}" for name, value in settings.masked().items())
    logging.getLogger("engagement").info("worker settings: %s", shown)
    os.makedirs(settings.data_dir, exist_ok=True)
    try:
        require_store(settings.store)
    except SettingsError as exc:
        raise SystemExit(f"engagement: {exc}") from None
    ensure_topics(settings)
    try:
        check_record_limit(settings)
    except SettingsError as exc:
        raise SystemExit(f"engagement: invalid setting {exc}") from None
    worker = create_worker(settings)
    tune_gc()
    EngagementWorker(worker, loglevel=settings.log_level, quiet=True).execute_from_commandline()
    return 0


def cmd_broker(args: argparse.Namespace) -> int:
    import signal
    import threading

    from streams.testbed.brokers import TansuBroker

    broker = TansuBroker(port=args.port)
    broker.start()
    print(f"Tansu broker ready at {broker.url} (memory storage; Ctrl-C stops it)", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        broker.stop()
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    from streams.tools.publish import publish_command

    settings = Settings.from_env_or_exit()
    return publish_command(
        args.source, settings, topic=args.topic, fmt=args.format, progress=not args.quiet
    )


def cmd_demo(args: argparse.Namespace) -> int:
    from streams.demo.run import run_demo

    return run_demo(
        args.seconds, args.users, args.bootstrap, days=args.days, seed=args.seed, report=args.report
    )


def cmd_settings(args: argparse.Namespace) -> int:
    if args.markdown:
        print(markdown_table())
        return 0
    for env, default, doc in describe():
        print(f"{env}={default}\n    {doc}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="engagement", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("worker", help="run a worker").set_defaults(func=cmd_worker)
    add_signals_parser(sub)
    add_fit_parser(sub)
    add_retention_parser(sub)
    add_bench_parser(sub)
    broker = sub.add_parser("broker", help="run the embedded Tansu broker")
    broker.add_argument("--port", type=int, default=9092)
    broker.set_defaults(func=cmd_broker)
    publish = sub.add_parser("publish", help="publish events from a file or stdin")
    publish.add_argument("source", help="a .jsonl/.json/.csv file, or - for stdin (JSON lines)")
    publish.add_argument("--topic", default=None, help="default: ENGAGEMENT_INPUT_TOPIC")
    publish.add_argument("--format", choices=["jsonl", "csv"], default=None)
    publish.add_argument("--quiet", action="store_true", help="no progress line")
    publish.set_defaults(func=cmd_publish)
    add_simulate_parser(sub)
    add_uplift_parser(sub)
    demo = sub.add_parser(
        "demo", help="the whole product on the embedded broker, in about a minute"
    )
    demo.add_argument("--days", type=int, default=60, help="simulated days")
    demo.add_argument("--users", type=int, default=5_000, help="simulated users")
    demo.add_argument("--seconds", type=float, default=60.0, help="wall time to play the days in")
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--report", default=None, help="report folder (default reports/demo-<time>)")
    demo.add_argument("--bootstrap", default=None, help="use this Kafka instead of Tansu")
    demo.set_defaults(func=cmd_demo)
    settings = sub.add_parser("settings", help="list every setting")
    settings.add_argument("--markdown", action="store_true", help="as the README's table")
    settings.set_defaults(func=cmd_settings)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with contextlib.suppress(SettingsError):  # a bad setting is the command's to report
        mask_secrets(Settings.from_env().secrets())  # no command logs a secret
    try:
        return int(args.func(args))
    except EngagementError as exc:
        print(f"engagement: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
