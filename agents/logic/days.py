"""Calendar days in one IANA timezone, as integers (days since 1970-01-01 local).

Every definition (DAU, cohorts, retention, lifecycle) counts calendar days of event time, so this
runs once per event: UTC is pure integer arithmetic, other zones cache the UTC offset per hour
(offsets only change on whole hours or half hours, and never twice within one).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Final
from zoneinfo import ZoneInfo

DAY_MS: Final = 86_400_000
_HOUR_MS: Final = 3_600_000
_EPOCH_ORDINAL: Final = date(1970, 1, 1).toordinal()
_CACHE_LIMIT: Final = 200_000


class Calendar:
    """Maps epoch milliseconds to local day numbers and back."""

    __slots__ = ("_offsets", "_starts", "_tz", "name")

    def __init__(self, timezone: str = "UTC") -> None:
        self.name = timezone
        self._tz = None if timezone in {"UTC", "Etc/UTC"} else ZoneInfo(timezone)
        self._offsets: dict[int, int] = {}
        self._starts: dict[int, int] = {}

    def day_of(self, ms: int) -> int:
        """The local calendar day of the instant ``ms``."""
        if self._tz is None:
            return ms // DAY_MS
        hour = ms // _HOUR_MS
        offset = self._offsets.get(hour)
        if offset is None:
            if len(self._offsets) > _CACHE_LIMIT:
                self._offsets.clear()
            moment = datetime.fromtimestamp(hour * 3600, UTC).astimezone(self._tz)
            utcoffset = moment.utcoffset()
            offset = int(utcoffset.total_seconds() * 1000) if utcoffset else 0
            self._offsets[hour] = offset
        return (ms + offset) // DAY_MS

    def start_of(self, day: int) -> int:
        """Epoch milliseconds of local midnight starting ``day``."""
        if self._tz is None:
            return day * DAY_MS
        start = self._starts.get(day)
        if start is None:
            local = datetime.combine(date.fromordinal(day + _EPOCH_ORDINAL), time(), self._tz)
            start = int(local.timestamp() * 1000)
            self._starts[day] = start
        return start

    @staticmethod
    def iso(day: int) -> str:
        """``YYYY-MM-DD`` of a day number."""
        return date.fromordinal(day + _EPOCH_ORDINAL).isoformat()
