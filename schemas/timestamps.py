"""Event time on the wire: the one parser of an event's ``timestamp`` and the one formatter of
the RFC 3339 stamps the signals carry.

An event's ``timestamp`` is integer epoch milliseconds or an RFC 3339 date-time with ``Z`` or an
offset (a leap second counts as the instant after ``hh:mm:59``), between
:data:`MIN_TIMESTAMP_MS` and :data:`MAX_TIMESTAMP_MS`. Ingest, the tools and the simulator read
it through :func:`event_time_ms` only.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any

MIN_TIMESTAMP_MS = 100_000_000_000  # 1973-03-03: smaller values are epoch seconds by mistake
MAX_TIMESTAMP_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
TIMESTAMP_RULE = (
    "timestamp must be an RFC 3339 date-time with Z or an offset, or integer epoch "
    "milliseconds, between 1973-03-03T09:46:40Z and 9999-12-31T23:59:59.999Z"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)


def event_time_ms(value: Any) -> int | None:
    """Epoch ms of an event's ``timestamp``, or None if it breaks :data:`TIMESTAMP_RULE`."""
    if isinstance(value, str):
        milliseconds = rfc3339_ms(value)
        if milliseconds is None:
            return None
    elif isinstance(value, int) and not isinstance(value, bool):
        milliseconds = value
    else:
        return None
    return milliseconds if MIN_TIMESTAMP_MS <= milliseconds <= MAX_TIMESTAMP_MS else None


def rfc3339_ms(text: str) -> int | None:
    """Epoch ms of an RFC 3339 date-time with ``Z`` or an offset; None otherwise."""
    text = text.upper()  # RFC 3339 allows "t" and "z"; fromisoformat does not
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        if text[17:19] != "60":
            return None
        try:  # a leap second: the instant after hh:mm:59
            moment = datetime.fromisoformat(text[:17] + "59" + text[19:]) + timedelta(seconds=1)
        except (ValueError, OverflowError):
            return None
    if moment.tzinfo is None:
        return None
    return (moment - _EPOCH) // _ONE_MS


_DAY_MS = 86_400_000


def iso_ms(ms: int) -> str:
    """RFC 3339 UTC with milliseconds, as the signals carry their stamps
    (``1970-01-01T00:00:00.000Z``). Two per signal: the date part is cached per day, the time
    of day is three looked-up texts, indexed by floor division (not three ``divmod`` calls and
    their tuples: 0.28 us against 0.37; 1.4 for ``datetime.isoformat``)."""
    rest = ms % _DAY_MS
    return (
        _date_text(ms // _DAY_MS)
        + _T_HOUR_MINUTE[rest // 60_000]
        + _TWO[rest // 1000 % 60]
        + _MILLIS[rest % 1000]
    )


_T_HOUR_MINUTE = tuple(f"T{h:02d}:{m:02d}:" for h in range(24) for m in range(60))
_TWO = tuple(f"{n:02d}" for n in range(60))
_MILLIS = tuple(f".{n:03d}Z" for n in range(1000))


@lru_cache(maxsize=4096)
def _date_text(day: int) -> str:
    return (_EPOCH_DATE + timedelta(days=day)).isoformat()


_EPOCH_DATE = date(1970, 1, 1)
