"""The rows of an ``events.by_user`` record (see :mod:`streams.worker.codecs`) read back.

The activity stage reads every row of every record, once per event; compiled, a row's checks
and its fields are list items and type tests instead of interpreted unpacking (a record of 250
rows: 394 -> 307-343 ns a row with the JSON decode, 150 of which are ``orjson.loads``).
:mod:`streams.worker.codecs` keeps the record around them (JSON, version, clocks, funnel
matches) and its errors. (The ingest's side, the rows written, stayed interpreted: compiled it
reads a canonical event's fields by name all the same, and boxed its timestamp again.)
"""

from __future__ import annotations

from typing import Any, Final

from schemas.records import Activity

_NEW: Final = tuple.__new__  # a third of ``Activity._make``'s cost, bound once
_NONE: Final[tuple[int, ...]] = ()


def activities(rows: Any) -> list[Activity]:
    """The :class:`Activity` of each row, every row checked in the loop that builds them:
    TypeError or ValueError naming the row's index (never its values: they hold user ids)."""
    if type(rows) is not list:
        raise TypeError("rows must be a list")
    out: list[Activity] = []
    for i, row in enumerate(rows):
        if type(row) is not list or len(row) != 5:
            raise ValueError(f"row {i}: expected a list of 5 values")
        values: list[Any] = row
        user, ts, event_id, event_type, channel = (
            values[0],
            values[1],
            values[2],
            values[3],
            values[4],
        )
        if (
            type(user) is not str
            or type(ts) is not int
            or type(event_id) is not str
            or type(event_type) is not str
            or (channel is not None and type(channel) is not str)
        ):
            raise TypeError(f"row {i}: expected [str, int, str, str, str or null]")
        out.append(_NEW(Activity, (user, ts, event_id, event_type, channel, _NONE)))
    return out
