"""Parsers of setting values: each turns the text an operator writes into a value or raises
ValueError saying what is wrong (:class:`streams.settings.Settings` names the variable)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from agents.logic.funnels import Funnel, parse_funnels

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.\-]*$")
DAY_SECONDS = 86_400.0
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")


def parse_duration(text: str) -> float:
    """``"90s"``, ``"15m"``, ``"1h"``, ``"7d"``, ``"250ms"`` or plain seconds -> seconds."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"not a duration: {text!r} (use e.g. 250ms, 30s, 15m, 1h, 7d)")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def as_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"not a boolean: {text!r} (use true or false)")


def as_names(text: str) -> tuple[str, ...]:
    items = tuple(item.strip() for item in text.split(",") if item.strip())
    for item in items:
        if not _NAME.match(item):
            raise ValueError(f"{item!r} is not a lower-case name ([a-z0-9_.-])")
    if len(set(items)) != len(items):
        raise ValueError("names repeat")
    return items


def as_brokers(text: str) -> tuple[str, ...]:
    urls = tuple(item.strip() for item in text.split(",") if item.strip())
    if not urls:
        raise ValueError("at least one broker URL is required, e.g. kafka://localhost:9092")
    for url in urls:
        if not re.match(r"^kafka://[^\s/:]+(:\d+)?$", url):
            raise ValueError(f"{url!r} is not of the form kafka://host:port")
    return urls


def as_categories(text: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """``"purchase=purchase|checkout;social=share|invite"`` -> ((name, event types), ...)."""
    result = []
    for part in (p.strip() for p in text.split(";") if p.strip()):
        name, sep, types = part.partition("=")
        members = tuple(t.strip() for t in types.split("|") if t.strip())
        if not sep or not _NAME.match(name.strip()) or not members:
            raise ValueError(f"{part!r} is not of the form name=type|type")
        result.append((name.strip(), members))
    if len(result) > 4:
        raise ValueError("at most 4 categories are tracked per user")
    return tuple(result)


def as_ints(text: str) -> tuple[int, ...]:
    values = tuple(sorted({int(v) for v in text.split(",") if v.strip()}))
    if not values or values[0] < 1:
        raise ValueError("a comma-separated list of whole days >= 1 is required")
    return values


def as_timezone(text: str) -> str:
    try:
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"{text!r} is not an IANA timezone name") from exc
    return text


def as_choice(*options: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in options:
            raise ValueError(f"{text!r} is not one of {', '.join(options)}")
        return text

    return parse


def as_int_range(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text)
        if not low <= value <= high:
            raise ValueError(f"{value} is outside {low}..{high}")
        return value

    return parse


def as_replicas(text: str) -> int:
    """A replica count 1..32, or -1 for the brokers' default (as Kafka Streams does)."""
    value = int(text)
    if value != -1 and not 1 <= value <= 32:
        raise ValueError(f"{value} is neither -1 (the brokers' default) nor within 1..32")
    return value


def as_positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise ValueError(f"{value} must be > 0")
    return value


def as_probability(text: str) -> float:
    value = float(text)
    if not 0 < value < 1:
        raise ValueError(f"{value} must be strictly between 0 and 1")
    return value


def as_share(text: str) -> float:
    value = float(text)
    if not 0 <= value < 1:
        raise ValueError(f"{value} must be within [0, 1)")
    return value


def as_positive_duration(text: str) -> float:
    value = parse_duration(text)
    if value <= 0:
        raise ValueError("must be longer than zero")
    return value


def as_duration_or_off(text: str) -> float:
    """A positive duration, or ``off`` (0)."""
    if text.strip().lower() == "off":
        return 0.0
    return as_positive_duration(text)


def as_str(text: str) -> str:
    return text


def as_http_url(text: str) -> str:
    """An http(s) base URL without the trailing slash, or empty (the feature is off)."""
    url = text.strip().rstrip("/")
    if url and not re.match(r"^https?://[^\s/]+(/\S*)?$", url):
        raise ValueError(f"{url!r} is not an http:// or https:// URL")
    return url


def as_funnels(text: str) -> tuple[Funnel, ...]:
    """A JSON list of funnels, or the path of a file holding one (empty: no funnels)."""
    text = text.strip()
    if not text:
        return ()
    if not text.startswith(("[", "{")):
        try:
            text = Path(text).read_text()
        except OSError as exc:
            raise ValueError(f"neither a JSON list nor a readable file: {exc}") from None
    return parse_funnels(text)
