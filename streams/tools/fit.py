"""``engagement fit``: the MBG/NBD parameters from canonical events or from every user's state
in the changelog of a running system.

engagement fit (--events FILE.jsonl | --from-state) [--now TIME] [--out params.json]

TIME: see :mod:`streams.tools.args`.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

import orjson

from agents.logic.days import Calendar
from agents.logic.fit import FitResult, Summary, fit, summaries_from_events
from agents.logic.model import summary_of
from agents.logic.state import UserState
from schemas.timestamps import TIMESTAMP_RULE, event_time_ms, iso_ms
from streams.settings import Settings
from streams.tools.args import Loader, default_loader, now_arg, positive
from streams.worker.changelog import changelog_topic

MIN_USERS = 50
DEFAULT_PARAMS_FILE = "engagement-params.json"


# -- fit -----------------------------------------------------------------------------------------
def read_event_pairs(path: str | Path, errors: list[str]) -> Iterator[tuple[str, int]]:
    """``(user_id, timestamp_ms)`` of each JSON line with ``user_id`` and ``timestamp``.

    Unreadable lines are skipped and described in ``errors``.
    """
    with open(path, "rb") as stream:
        for number, line in enumerate(stream, 1):
            if not line.strip():
                continue
            try:
                obj = orjson.loads(line)
                user = obj["user_id"]
                if not isinstance(user, str) or not user:
                    raise ValueError("user_id must be a non-empty string")
                stamp = event_time_ms(obj["timestamp"])
                if stamp is None:
                    raise ValueError(TIMESTAMP_RULE)
                yield user, stamp
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                errors.append(f"line {number}: {type(exc).__name__}: {exc}")


def summaries_from_states(
    states: Iterable[UserState], now_ms: int, calendar: Calendar
) -> list[Summary]:
    """x = active days - 1, t_x = last - first active day, T = today - first active day
    (:func:`agents.logic.model.summary_of`); a user first seen after ``now_ms`` is left out."""
    today = calendar.day_of(now_ms)
    rows = (summary_of(state, calendar, today) for state in states)
    return [Summary(x, float(t_x), float(T)) for x, t_x, T in (r for r in rows if r is not None)]


def _event_summaries(
    settings: Settings, path: str, now_ms: int | None
) -> tuple[list[Summary], int, str]:
    errors: list[str] = []
    pairs = list(read_event_pairs(path, errors))
    for message in errors[:5]:
        print(f"engagement fit: skipped {path} {message}", file=sys.stderr)
    if len(errors) > 5:
        print(f"engagement fit: ... {len(errors)} unreadable lines in all", file=sys.stderr)
    if now_ms is None:  # a file is history: "now" is its newest event unless told otherwise
        now_ms = max((ms for _, ms in pairs), default=int(time.time() * 1000))
    calendar = Calendar(settings.timezone)
    return summaries_from_events(pairs, now_ms, calendar.day_of), now_ms, f"events:{path}"


def fit_command(
    settings: Settings,
    *,
    events: str | None,
    now_ms: int | None,
    out_path: str = DEFAULT_PARAMS_FILE,
    min_users: int = MIN_USERS,
    out: TextIO = sys.stdout,
    loader: Loader = default_loader,
) -> int:
    """Fit from an events file or (``events=None``) the changelog states; write the params file."""
    if events is not None:
        summaries, now_ms, source = _event_summaries(settings, events, now_ms)
    else:
        now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
        snapshot = loader(settings)
        states = (state for _, state in snapshot.users())
        summaries = summaries_from_states(states, now_ms, Calendar(settings.timezone))
        source = f"state:{changelog_topic(settings)}"
    if len(summaries) < min_users:
        print(
            f"engagement fit: only {len(summaries)} users in {source} up to {iso_ms(now_ms)}; "
            f"at least {min_users} are needed for a meaningful fit",
            file=sys.stderr,
        )
        return 1
    result = fit(summaries)
    _report_fit(result, source, now_ms, out)
    result.params.save(out_path, metadata=_fit_metadata(result, source, now_ms, settings))
    print(f"wrote {out_path} (use it with ENGAGEMENT_MODEL_FILE={out_path})", file=out)
    return 0


def _fit_metadata(
    result: FitResult, source: str, now_ms: int, settings: Settings
) -> dict[str, float | int | str]:
    return {
        "log_likelihood": result.log_likelihood,
        "n_users": result.n_users,
        "converged": str(result.converged).lower(),
        "source": source,
        "now": iso_ms(now_ms),
        "timezone": settings.timezone,
        "fitted_at": iso_ms(int(time.time() * 1000)),
    }


def _report_fit(result: FitResult, source: str, now_ms: int, out: TextIO) -> None:
    p = result.params
    print(f"MBG/NBD fit on {result.n_users} users from {source}, now = {iso_ms(now_ms)}", file=out)
    for name, value in (("r", p.r), ("alpha", p.alpha), ("a", p.a), ("b", p.b)):
        print(f"  {name:<6} {value:.6g}", file=out)
    print(f"  log-likelihood {result.log_likelihood:.6f}", file=out)
    print(f"  users          {result.n_users}", file=out)
    if not result.converged:
        print(f"  warning: the optimiser did not converge ({result.message})", file=out)


# -- command line --------------------------------------------------------------------------------
def _run_fit(args: argparse.Namespace) -> int:
    settings = Settings.from_env_or_exit()
    if args.events is None:
        from streams.kafka import check_brokers

        check_brokers(settings)
    return fit_command(
        settings,
        events=args.events,
        now_ms=now_arg(settings, args.now),
        out_path=args.out,
        min_users=args.min_users,
    )


def add_fit_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``engagement fit``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "fit",
        help="fit the MBG/NBD churn-model parameters (r, alpha, a, b)",
        description="Fit the churn model's population parameters (MBG/NBD r, alpha, a, b) by "
        "maximum likelihood, from a file of events or from every user's state in a running "
        "system, and write a parameters file for ENGAGEMENT_MODEL_FILE. TIME is RFC 3339 "
        "(2026-02-01T12:00:00Z), a date or local date-time in ENGAGEMENT_TIMEZONE (a date means "
        "the end of that day), or epoch milliseconds.",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--events", metavar="FILE.jsonl", help="canonical events, JSON lines")
    source.add_argument(
        "--from-state", action="store_true", help="the users' states in the state changelog"
    )
    parser.add_argument(
        "--now",
        metavar="TIME",
        help="the observation end (default: the newest event with --events, else the wall clock)",
    )
    parser.add_argument("--out", default=DEFAULT_PARAMS_FILE, help="parameters file to write")
    parser.add_argument("--min-users", type=positive, default=MIN_USERS, help=argparse.SUPPRESS)
    parser.set_defaults(func=_run_fit)
    return parser


__all__ = [
    "add_fit_parser",
    "fit_command",
    "read_event_pairs",
    "summaries_from_states",
]
