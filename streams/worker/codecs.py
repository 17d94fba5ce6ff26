"""Wire formats of the topics engagement-stream owns internally.

``engagement.events.by_user`` carries *batches*: one record holds the events of many users that
all hash (Kafka murmur2) to that record's partition, plus the ingest's event-time watermark and
its source id. One record per partition per ingest step is what makes Faust's per-message cost
(~150 µs) small per event; the record key is the first event's user id, so the record also sits
where a murmur2 producer would have put it. Watermark-only records (no rows) keep idle
partitions' event clocks moving. Each event is a row of what the activity stage uses (a fifth
of the bytes of the canonical object and a third of its decode time)::

    {"v": 2, "wm": <watermark ms>, "src": <ingest instance id>, "fr": <frontier ms>,
     "rows": [[user_id, timestamp_ms, event_id, event_type, channel], ...]}

``"fr"`` (optional, added within version 2: older readers ignore it) is the ingest's input
frontier, the wall ms up to which it has read all its input (:mod:`agents.logic.frontier`); a
record without it says nothing about the frontier.

``"fm"`` (optional, added within version 2) carries the funnel property matches the ingest
found (:class:`agents.logic.funnels.PropertySteps`), only for rows that have some:
``[[row index, step id, ...], ...]`` (:func:`agents.logic.funnels.step_id`); a record without it
has none. Older readers ignore it, which is right for them: they refuse to start with a funnel
step that has a property match, so none of their steps can be hit by one. Rows keep five values
because older readers reject a sixth (the whole record would be quarantined).

Version 1 (``"events": [<canonical event>, ...]``) is still read, for rolling upgrades.

A record is decoded *whole* before any of its events is folded: one that cannot be read (not
JSON, an unknown version, a row of the wrong shape, a tombstone) raises
:class:`~schemas.errors.BatchDecodeError` with a :class:`BatchReason`, and the activity stage
quarantines it unfolded (:mod:`streams.worker.quarantine`).

:func:`encode_batches` splits a partition's events into records of at most ``max_rows`` rows and
``max_bytes`` encoded bytes (``ENGAGEMENT_RECORD_MAX_BYTES``). Rows are bounded by the event
schema (:func:`largest_row_batch`: about 4 KB with every id at its maximum length in escaped or
4-byte characters), so one row always fits the smallest allowed limit (64 KiB). The common case
costs one encode and one ``len``; only an oversized record is encoded again, halved.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Any

import orjson

from agents.logic.batch_rows import activities
from agents.logic.funnels import MAX_FUNNELS, MAX_STEPS, PropertySteps
from schemas import load_schema
from schemas.errors import BatchDecodeError
from schemas.records import Activity, Event, EventLike

BATCH_VERSION = 2


def encode_batch(
    watermark_ms: int,
    events: Sequence[EventLike],
    source: str = "",
    frontier_ms: int | None = None,
    steps: PropertySteps | None = None,
) -> bytes:
    """One record; ``steps`` (the funnels' property steps) are matched against the properties of
    ``events`` that are canonical :class:`Event` objects, an :class:`Activity` keeps its own."""
    data: dict[str, Any] = {"v": BATCH_VERSION, "wm": watermark_ms, "src": source}
    if frontier_ms is not None:
        data["fr"] = frontier_ms
    data["rows"] = [
        [e.user_id, e.timestamp_ms, e.event_id, e.event_type, e.channel] for e in events
    ]
    if steps or (events and not isinstance(events[0], Event)):
        matches = _matches(events, steps)
        if matches:
            data["fm"] = matches
    return orjson.dumps(data)


def _matches(events: Sequence[EventLike], steps: PropertySteps | None) -> list[list[int]]:
    """The ``"fm"`` entries of ``events``: ``[row, step id, ...]`` of rows with matches."""
    out: list[list[int]] = []
    for row, e in enumerate(events):
        if isinstance(e, Activity):
            ids = e.matches
        else:
            ids = steps.matched(e.event_type, e.properties) if steps else ()
        if ids:
            out.append([row, *ids])
    return out


Clocks = tuple[int, int | None]  # (event-time watermark ms, input frontier ms or None)


def encode_batches(
    watermark_ms: int,
    events: Sequence[EventLike],
    source: str,
    max_bytes: int,
    max_rows: int,
    *,
    frontier_ms: int | None = None,
    last: Clocks | None = None,
    steps: PropertySteps | None = None,
) -> list[tuple[bytes, bytes]]:
    """(key, value) records holding ``events`` in order, each of at most ``max_rows`` rows and,
    unless a single row is larger, ``max_bytes`` of key and value; the key is the first user id.
    Every record carries ``(watermark_ms, frontier_ms)`` but the last, which carries ``last``
    when given (the clocks a step moved to: see the ingest service). ``steps``: as for
    :func:`encode_batch`."""
    records: list[tuple[bytes, bytes]] = []
    before: Clocks = (watermark_ms, frontier_ms)
    for start in range(0, len(events), max_rows):
        final = last is not None and start + max_rows >= len(events)
        clocks = last if final and last is not None else before
        rows = events[start : start + max_rows]
        _split_encode(before, clocks, rows, (source, steps), max_bytes=max_bytes, out=records)
    return records


def _split_encode(
    before: Clocks,
    clocks: Clocks,
    rows: Sequence[EventLike],
    how: tuple[str, PropertySteps | None],
    *,
    max_bytes: int,
    out: list[tuple[bytes, bytes]],
) -> None:
    """``clocks`` for this chunk's last record; ``before`` for the others; ``how``: the source
    and the property steps."""
    source, steps = how
    key = rows[0].user_id.encode()
    value = encode_batch(clocks[0], rows, source, clocks[1], steps)
    if len(key) + len(value) <= max_bytes or len(rows) == 1:
        out.append((key, value))
        return
    half = len(rows) // 2  # halves until each fits: log2(rows) encodes of the whole at worst
    _split_encode(before, before, rows[:half], how, max_bytes=max_bytes, out=out)
    _split_encode(before, clocks, rows[half:], how, max_bytes=max_bytes, out=out)


def largest_row_batch(source: str = "f" * 12) -> int:
    """Bytes of a one-row batch whose ids are as long as the event schema allows, in the
    character that encodes largest (a control character: six bytes as ``\\u0000``), matching
    every funnel step there can be."""
    schema = load_schema("user_event")["properties"]

    def widest(name: str) -> str:
        return "\x00" * int(schema[name]["maxLength"])

    row = Activity(
        widest("user_id"), 253402300799999, widest("event_id"), widest("event_type"),
        widest("channel"), (2**32 - 1,) * (MAX_FUNNELS * MAX_STEPS),
    )  # fmt: skip
    return len(encode_batch(2**63 - 1, [row], source))


class BatchReason(StrEnum):
    """Why an ``events.by_user`` record was quarantined: a closed set, safe as a metric label."""

    TOMBSTONE = "tombstone"  # a null value
    NOT_JSON = "not_json"  # not UTF-8 JSON
    UNKNOWN_VERSION = "unknown_version"  # e.g. written by a newer ingest during an upgrade
    INVALID_BATCH = "invalid_batch"  # JSON of a known version, but not the documented shape


def decode_batch(value: bytes | None) -> tuple[int, str, list[Activity]]:
    """(watermark ms, source, events) of a by_user record: :func:`decode_record` without the
    frontier."""
    watermark, source, rows, _ = decode_record(value)
    return watermark, source, rows


def decode_record(value: bytes | None) -> tuple[int, str, list[Activity], int | None]:
    """(watermark ms, source, events, frontier ms or None) of a by_user record, every row
    checked; raises :class:`BatchDecodeError` (nothing returned, so nothing folded) if any part
    is unreadable."""
    if value is None:
        raise BatchDecodeError(BatchReason.TOMBSTONE, "a by_user record has no value")
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise BatchDecodeError(BatchReason.NOT_JSON, f"{exc.msg} at char {exc.pos}") from None
    version = data.get("v") if isinstance(data, dict) else None
    if version not in {1, BATCH_VERSION}:
        found = "no version" if version is None else f"version {version!r}"
        raise BatchDecodeError(
            BatchReason.UNKNOWN_VERSION,
            f"{found}; this worker reads by_user batch versions 1 and {BATCH_VERSION}",
        )
    try:
        rows = activities(data["rows"]) if version == BATCH_VERSION else _rows_v1(data["events"])
        watermark, source = data.get("wm", 0), data.get("src") or ""
        frontier = data.get("fr")
        if type(watermark) is not int or not isinstance(source, str):
            raise TypeError("wm must be an integer and src a string")
        if frontier is not None and type(frontier) is not int:
            raise TypeError("fr must be an integer")
        if "fm" in data:
            _add_matches(rows, data["fm"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BatchDecodeError(
            BatchReason.INVALID_BATCH, f"version {version}: {type(exc).__name__}: {exc}"
        ) from None
    return watermark, source, rows, frontier


def _rows_v1(events: list[Any]) -> list[Activity]:
    return activities([list(Activity.of(Event.from_wire(wire))[:5]) for wire in events])


def _add_matches(rows: list[Activity], found: Any) -> None:
    """Puts the ``"fm"`` entries' step ids on their rows (in place)."""
    if type(found) is not list:
        raise TypeError("fm must be a list")
    for entry in found:
        if type(entry) is not list or len(entry) < 2 or any(type(v) is not int for v in entry):
            raise TypeError("fm entries must be [row index, step id, ...] integers")
        row = entry[0]
        if not 0 <= row < len(rows):
            raise ValueError(f"fm names row {row} of {len(rows)}")
        rows[row] = rows[row]._replace(matches=tuple(entry[1:]))
