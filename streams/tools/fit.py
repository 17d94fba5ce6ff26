"""Analyst tools: ``engagement fit`` (MBG/NBD parameters) and ``engagement retention`` (the
cohort triangle), both over every partition of a running system via the state changelog.

engagement fit (--events FILE.jsonl | --from-state) [--now TIME] [--out params.json]
engagement retention [--cohorts 14] [--by-channel] [--html FILE] [--now TIME]

TIME is RFC 3339 (``2026-02-01T12:00:00Z``), a local date or datetime in ENGAGEMENT_TIMEZONE
(``2026-02-01`` means the end of that day), or epoch milliseconds.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo

import orjson

from agents.logic.aggregates import rebuild
from agents.logic.days import Calendar
from agents.logic.fit import FitResult, Summary, fit, summaries_from_events
from agents.logic.signals import iso_ms
from agents.logic.state import UserState
from streams.settings import Settings
from streams.tools.retention_report import render_html, render_text, retention_triangle
from streams.worker.changelog import ChangelogSnapshot, changelog_topic, load_changelog

MIN_USERS = 50
DEFAULT_PARAMS_FILE = "engagement-params.json"

Loader = Callable[[Settings], ChangelogSnapshot]


def _default_loader(settings: Settings) -> ChangelogSnapshot:
    return load_changelog(settings)


# -- time ----------------------------------------------------------------------------------------
def parse_time(text: str, timezone: str = "UTC") -> int:
    """Epoch ms of RFC 3339, epoch ms digits, or a local date/datetime in ``timezone``.

    A bare date means the last millisecond of that local day. ValueError otherwise.
    """
    text = text.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    calendar = Calendar(timezone)
    if len(text) == 10:
        day = date.fromisoformat(text).toordinal() - date(1970, 1, 1).toordinal()
        return calendar.start_of(day + 1) - 1
    moment = datetime.fromisoformat(text.upper().replace(" ", "T"))
    if moment.tzinfo is None:
        moment = moment.replace(
            tzinfo=UTC if timezone in {"UTC", "Etc/UTC"} else ZoneInfo(timezone)
        )
    return int(moment.timestamp() * 1000)


def event_time_ms(value: Any) -> int:
    """An event's ``timestamp``: integer epoch ms, or RFC 3339 with Z or an offset."""
    if isinstance(value, bool):
        raise ValueError("timestamp must be epoch ms or RFC 3339")
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, str):
        if value.isdigit():
            return int(value)
        moment = datetime.fromisoformat(value.upper())
        if moment.tzinfo is None:
            raise ValueError("RFC 3339 timestamp needs Z or an offset")
        return int(moment.timestamp() * 1000)
    raise ValueError("timestamp must be epoch ms or RFC 3339")


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
                yield user, event_time_ms(obj["timestamp"])
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                errors.append(f"line {number}: {type(exc).__name__}: {exc}")


def summaries_from_states(
    states: Iterable[UserState], now_ms: int, calendar: Calendar
) -> list[Summary]:
    """x = active days - 1, t_x = last - first active day, T = today - first active day.

    A user first seen after ``now_ms`` is left out; T is raised to t_x for a user whose last
    activity is after it (state cannot forget the later days).
    """
    today = calendar.day_of(now_ms)
    summaries = []
    for state in states:
        first = calendar.day_of(state.first_ms)
        if first > today:
            continue
        t_x = float(state.last_day - first)
        summaries.append(Summary(state.active_days() - 1, t_x, max(float(today - first), t_x)))
    return summaries


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
    loader: Loader = _default_loader,
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


# -- retention -----------------------------------------------------------------------------------
def retention_today(settings: Settings, snapshot: ChangelogSnapshot, now_ms: int | None) -> int:
    """Today's day number: ``--now``, else the newest watermark (event clock), else wall clock."""
    calendar = Calendar(settings.timezone)
    if now_ms is None and settings.clock == "event":
        now_ms = snapshot.newest_watermark_ms() or None
        if now_ms is None:
            print(
                "engagement retention: no watermark in the changelog; using the wall clock",
                file=sys.stderr,
            )
    if now_ms is None:
        now_ms = int(time.time() * 1000)
    return calendar.day_of(now_ms)


def retention_command(
    settings: Settings,
    *,
    cohorts: int = 14,
    by_channel: bool = False,
    html_path: str | None = None,
    now_ms: int | None = None,
    out: TextIO = sys.stdout,
    loader: Loader = _default_loader,
) -> int:
    """Print the retention triangle of the last ``cohorts`` cohorts; optionally write HTML."""
    calendar = Calendar(settings.timezone)
    snapshot = loader(settings)
    today = retention_today(settings, snapshot, now_ms)
    agg = rebuild((state for _, state in snapshot.users()), calendar)
    channels = ("other", *settings.channels)
    triangle = retention_triangle(agg, today, cohorts, channels, by_channel=by_channel)
    out.write(render_text(triangle, calendar))
    if html_path:
        Path(html_path).write_text(render_html(triangle, calendar), encoding="utf-8")
        print(f"wrote {html_path}", file=out)
    return 0


# -- command line --------------------------------------------------------------------------------
def _now_arg(settings: Settings, text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return parse_time(text, settings.timezone)
    except ValueError as exc:
        raise SystemExit(f"engagement: --now {text!r}: {exc}") from None


def _run_fit(args: argparse.Namespace) -> int:
    settings = Settings.from_env_or_exit()
    return fit_command(
        settings,
        events=args.events,
        now_ms=_now_arg(settings, args.now),
        out_path=args.out,
        min_users=args.min_users,
    )


def _run_retention(args: argparse.Namespace) -> int:
    settings = Settings.from_env_or_exit()
    return retention_command(
        settings,
        cohorts=args.cohorts,
        by_channel=args.by_channel,
        html_path=args.html,
        now_ms=_now_arg(settings, args.now),
    )


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def add_fit_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``engagement fit``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "fit", help="fit the MBG/NBD churn-model parameters (r, alpha, a, b)"
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
    parser.add_argument("--min-users", type=_positive, default=MIN_USERS, help=argparse.SUPPRESS)
    parser.set_defaults(func=_run_fit)
    return parser


def add_retention_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``engagement retention``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "retention", help="the cohort retention triangle from the state changelog"
    )
    parser.add_argument("--cohorts", type=_positive, default=14, help="cohorts (and day columns)")
    parser.add_argument("--by-channel", action="store_true", help="one row per cohort and channel")
    parser.add_argument("--html", metavar="FILE", help="also write a self-contained HTML heatmap")
    parser.add_argument(
        "--now",
        metavar="TIME",
        help="today's date (default: newest watermark on the event clock, else the wall clock)",
    )
    parser.set_defaults(func=_run_retention)
    return parser


__all__ = [
    "add_fit_parser",
    "add_retention_parser",
    "fit_command",
    "parse_time",
    "read_event_pairs",
    "retention_command",
    "retention_today",
    "summaries_from_states",
]
