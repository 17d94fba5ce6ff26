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
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson

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
