"""What the tools share on the command line: the ``--now TIME`` parser, whole-number options,
and reading every user's state from the changelog.

TIME is RFC 3339 (``2026-02-01T12:00:00Z``), a local date or datetime in ENGAGEMENT_TIMEZONE
(``2026-02-01`` means the end of that day), or epoch milliseconds.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from agents.logic.days import Calendar
from schemas.errors import UsageError
from schemas.timestamps import rfc3339_ms
from streams.settings import Settings
from streams.worker.changelog import ChangelogSnapshot, load_changelog

Loader = Callable[[Settings], ChangelogSnapshot]


def default_loader(settings: Settings) -> ChangelogSnapshot:
    return load_changelog(settings)


def parse_time(text: str, timezone: str = "UTC") -> int:
    """Epoch ms of RFC 3339, epoch ms digits, or a local date/datetime in ``timezone``.

    A bare date means the last millisecond of that local day. ValueError otherwise.
    """
    text = text.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    if len(text) == 10:
        day = date.fromisoformat(text).toordinal() - date(1970, 1, 1).toordinal()
        return Calendar(timezone).start_of(day + 1) - 1
    stamped = rfc3339_ms(text.replace(" ", "T"))
    if stamped is not None:
        return stamped
    moment = datetime.fromisoformat(text.upper().replace(" ", "T"))  # local: no offset
    zone = UTC if timezone in {"UTC", "Etc/UTC"} else ZoneInfo(timezone)
    return int(moment.replace(tzinfo=zone).timestamp() * 1000)


def now_arg(settings: Settings, text: str | None) -> int | None:
    """``--now`` in epoch ms (None when not given); UsageError naming the option if malformed."""
    if text is None:
        return None
    try:
        return parse_time(text, settings.timezone)
    except ValueError as exc:
        raise UsageError(f"--now {text!r}: {exc}") from None


def iso_date(text: str) -> date:
    """A ``YYYY-MM-DD`` option (argparse reports a malformed one)."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date YYYY-MM-DD") from None


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value
