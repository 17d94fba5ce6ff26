"""Wire formats of the topics engagement-stream owns internally.

``engagement.events.by_user`` carries *batches*: one record holds the events of many users that
all hash (Kafka murmur2) to that record's partition, plus the ingest's event-time watermark and
its source id. One record per partition per ingest step is what makes Faust's per-message cost
(~150 µs) small per event; the record key is the first event's user id, so the record also sits
where a murmur2 producer would have put it. Watermark-only records (no rows) keep idle
partitions' event clocks moving. Each event is a row of what the activity stage uses (a fifth
of the bytes of the canonical object and a third of its decode time)::

    {"v": 2, "wm": <watermark ms>, "src": <ingest instance id>,
     "rows": [[user_id, timestamp_ms, event_id, event_type, channel], ...]}

Version 1 (``"events": [<canonical event>, ...]``) is still read, for rolling upgrades.

:func:`encode_batches` splits a partition's events into records of at most ``max_rows`` rows and
``max_bytes`` encoded bytes (``ENGAGEMENT_RECORD_MAX_BYTES``). Rows are bounded by the event
schema (:func:`largest_row_batch`: about 4 KB with every id at its maximum length in escaped or
4-byte characters), so one row always fits the smallest allowed limit (64 KiB). The common case
costs one encode and one ``len``; only an oversized record is encoded again, halved.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from schemas import load_schema
from schemas.records import Activity, Event, EventLike

BATCH_VERSION = 2


def encode_batch(watermark_ms: int, events: Sequence[EventLike], source: str = "") -> bytes:
    return orjson.dumps(
        {
            "v": BATCH_VERSION,
            "wm": watermark_ms,
            "src": source,
            "rows": [
                [e.user_id, e.timestamp_ms, e.event_id, e.event_type, e.channel] for e in events
            ],
        }
    )


def encode_batches(
    watermark_ms: int,
    events: Sequence[EventLike],
    source: str,
    max_bytes: int,
    max_rows: int,
) -> list[tuple[bytes, bytes]]:
    """(key, value) records holding ``events`` in order, each of at most ``max_rows`` rows and,
    unless a single row is larger, ``max_bytes`` of key and value; the key is the first user id."""
    records: list[tuple[bytes, bytes]] = []
    for start in range(0, len(events), max_rows):
        _split_encode(watermark_ms, events[start : start + max_rows], source, max_bytes, records)
    return records


def _split_encode(
    watermark_ms: int,
    rows: Sequence[EventLike],
    source: str,
    max_bytes: int,
    out: list[tuple[bytes, bytes]],
) -> None:
    key, value = rows[0].user_id.encode(), encode_batch(watermark_ms, rows, source)
    if len(key) + len(value) <= max_bytes or len(rows) == 1:
        out.append((key, value))
        return
    half = len(rows) // 2  # halves until each fits: log2(rows) encodes of the whole at worst
    _split_encode(watermark_ms, rows[:half], source, max_bytes, out)
    _split_encode(watermark_ms, rows[half:], source, max_bytes, out)


def largest_row_batch(source: str = "f" * 12) -> int:
    """Bytes of a one-row batch whose ids are as long as the event schema allows, in the
    character that encodes largest (a control character: six bytes as ``\\u0000``)."""
    schema = load_schema("user_event")["properties"]

    def widest(name: str) -> str:
        return "\x00" * int(schema[name]["maxLength"])

    row = Activity(
        widest("user_id"), 253402300799999, widest("event_id"), widest("event_type"),
        widest("channel"),
    )  # fmt: skip
    return len(encode_batch(2**63 - 1, [row], source))


def decode_batch(value: bytes) -> tuple[int, str, list[Activity]]:
    """(watermark ms, source, events) of a by_user record."""
    data = orjson.loads(value)
    version = data.get("v")
    if version == BATCH_VERSION:
        make = Activity._make
        rows = [make(row) for row in data["rows"]]
    elif version == 1:
        rows = [Activity.of(Event.from_wire(wire)) for wire in data["events"]]
    else:
        raise ValueError(f"unknown by_user batch version {version!r}")
    return int(data.get("wm", 0)), str(data.get("src") or ""), rows
