"""``engagement``: the command line of engagement-stream.

Every command fails with one line on stderr and an exit status from :mod:`streams.exits`,
never a traceback (``ENGAGEMENT_LOG_LEVEL=debug`` logs it); ``engagement --help`` lists both.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from schemas.errors import SettingsError
from streams import exits
from streams.redaction import mask_secrets
from streams.settings import Settings
from streams.testbed.bench.cli import add_bench_parser
from streams.tools.dead_letters import add_dead_letters_parser
from streams.tools.fit import add_fit_parser
from streams.tools.funnel import add_funnel_parser
from streams.tools.retention import add_retention_parser
from streams.tools.settings_view import add_settings_parser
from streams.tools.signals import add_signals_parser
from streams.tools.simulate import add_simulate_parser
from streams.tools.uplift import add_uplift_parser

DESCRIPTION = """\
Live per-user engagement signals and DAU/WAU/MAU and retention gauges from a Kafka stream of
user activity. Every command reads its settings from ENGAGEMENT_* environment variables
(engagement settings lists them)."""

log = logging.getLogger("engagement")


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error: ``engagement signals: error: ... (see --help)``."""

    def error(self, message: str) -> NoReturn:
        self.exit(exits.USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("engagement-stream")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "unknown"


def cmd_worker(args: argparse.Namespace) -> int:
    from agents import logic
    from streams.kafka import check_brokers
    from streams.logs import setup_logging, worker_logging_config
    from streams.topics import ensure_topics
    from streams.worker.app import EngagementWorker, create_worker
    from streams.worker.engine_setup import model_params
    from streams.worker.gc_tuning import tune_gc
    from streams.worker.record_limits import check_record_limit
    from streams.worker.store import require_store

    settings = Settings.from_env_or_exit()
    setup_logging(settings)
    # Start-up checks first, so that a failure is the one line main() prints.
    model_params(settings)  # a missing ENGAGEMENT_MODEL_FILE stops start-up here (exit 4)
    os.makedirs(settings.data_dir, exist_ok=True)
    require_store(settings.store)
    check_brokers(settings)
    shown = " ".join(f"{name}={value}" for name, value in settings.masked().items())
    log.info("worker settings: %s", shown)
    log.info(
        "agents.logic runs %s: %s",
        "compiled" if logic.compiled() else "as pure Python",
        logic.reason,
    )
    ensure_topics(settings)
    check_record_limit(settings)
    worker = create_worker(settings)
    tune_gc()
    EngagementWorker(
        worker,
        loglevel=settings.log_level,
        quiet=True,
        logging_config=worker_logging_config(settings),
    ).execute_from_commandline()
    return exits.OK


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
    return exits.OK


def cmd_publish(args: argparse.Namespace) -> int:
    from streams.kafka import check_brokers
    from streams.tools.publish import publish_command, require_readable

    require_readable(args.source)
    settings = Settings.from_env_or_exit()
    check_brokers(settings)
    return publish_command(
        args.source, settings, topic=args.topic, fmt=args.format, progress=not args.quiet
    )


def cmd_demo(args: argparse.Namespace) -> int:
    from streams.demo.run import run_demo

    if args.bootstrap is not None:
        from streams.kafka import check_brokers

        check_brokers(Settings.from_env_or_exit().replace(broker=(f"kafka://{args.bootstrap}",)))
    return run_demo(
        args.seconds, args.users, args.bootstrap, days=args.days, seed=args.seed, report=args.report
    )


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="engagement",
        description=DESCRIPTION,
        epilog="exit status:\n" + "\n".join(f"  {code:<4} {text}" for code, text in exits.TABLE),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    worker = sub.add_parser("worker", help="run a worker", description="Run a worker.")
    worker.set_defaults(func=cmd_worker)
    add_signals_parser(sub)
    add_dead_letters_parser(sub)
    add_fit_parser(sub)
    add_retention_parser(sub)
    add_funnel_parser(sub)
    add_bench_parser(sub)
    _add_broker_parser(sub)
    _add_publish_parser(sub)
    add_simulate_parser(sub)
    add_uplift_parser(sub)
    _add_demo_parser(sub)
    add_settings_parser(sub)
    return parser


def _add_broker_parser(sub: argparse._SubParsersAction[Parser]) -> None:
    text = "run the embedded Tansu broker in the foreground (memory storage)"
    broker = sub.add_parser("broker", help=text, description=text.capitalize() + ".")
    broker.add_argument("--port", type=int, default=9092, help="port to listen on (9092)")
    broker.set_defaults(func=cmd_broker)


def _add_publish_parser(sub: argparse._SubParsersAction[Parser]) -> None:
    publish = sub.add_parser(
        "publish",
        help="publish events from a file or stdin",
        description="Publish events (JSON lines, a JSON array or CSV with a header) to the input "
        "topic, keyed by user id. The worker validates them; invalid ones reach the dead-letter "
        "topic.",
    )
    publish.add_argument("source", help="a .jsonl/.json/.csv file (.gz too), or - for stdin")
    publish.add_argument("--topic", default=None, help="default: ENGAGEMENT_INPUT_TOPIC")
    publish.add_argument("--format", choices=["jsonl", "json", "csv"], default=None)
    publish.add_argument("--quiet", action="store_true", help="no progress line")
    publish.set_defaults(func=cmd_publish)


def _add_demo_parser(sub: argparse._SubParsersAction[Parser]) -> None:
    text = "the whole product on the embedded broker, in about a minute"
    demo = sub.add_parser("demo", help=text, description=f"Run {text}.")
    demo.add_argument("--days", type=int, default=60, help="simulated days")
    demo.add_argument("--users", type=int, default=5_000, help="simulated users")
    demo.add_argument("--seconds", type=float, default=60.0, help="wall time to play the days in")
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--report", default=None, help="report folder (default reports/demo-<time>)")
    demo.add_argument("--bootstrap", default=None, help="use this Kafka (HOST:PORT), not Tansu")
    demo.set_defaults(func=cmd_demo)


def _setup_tool_logging(command: str) -> None:
    """Tools log warnings and errors (everything with ENGAGEMENT_LOG_LEVEL=debug)."""
    from streams.logs import setup_logging

    with contextlib.suppress(SettingsError):  # a bad setting is the command's to report
        settings = Settings.from_env()
        if settings.log_level != "debug":
            settings = settings.replace(log_level="warning")
        setup_logging(settings, command)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with contextlib.suppress(SettingsError):
        mask_secrets(Settings.from_env().secrets())  # no command logs a secret
    if args.command != "worker":
        _setup_tool_logging(args.command)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print(f"engagement {args.command}: interrupted", file=sys.stderr)
        return exits.INTERRUPTED
    except BrokenPipeError:  # `engagement signals | head`: the reader left; say nothing
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return exits.FAILURE
    except Exception as exc:
        status, line = exits.explain(exc)
        log.debug("engagement %s failed", args.command, exc_info=True)
        print(f"engagement {args.command}: {line}", file=sys.stderr)
        return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
