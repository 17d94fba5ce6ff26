"""Wire formats of the topics engagement-stream owns internally.

``engagement.events.by_user`` carries *batches*: one record holds the canonical events of many
users that all hash (Kafka murmur2) to that record's partition, plus the ingest's event-time
watermark. One record per partition per ingest step is what makes Faust's per-message cost
(~150 µs) small per event; the record key is the first event's user id, so the record also sits
where a murmur2 producer would have put it. Watermark-only records (no events) keep idle
partitions' event clocks moving.

    {"v": 1, "wm": <watermark ms>, "src": <ingest instance id>, "events": [<canonical event>, ...]}
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from schemas.records import Event

BATCH_VERSION = 1


def encode_batch(watermark_ms: int, events: Sequence[Event], source: str = "") -> bytes:
    return orjson.dumps(
        {
            "v": BATCH_VERSION,
            "wm": watermark_ms,
            "src": source,
            "events": [e.to_wire() for e in events],
        }
    )


def decode_batch(value: bytes) -> tuple[int, str, list[Event]]:
    """(watermark ms, source, events) of a by_user record."""
    data = orjson.loads(value)
    if data.get("v") != BATCH_VERSION:
        raise ValueError(f"unknown by_user batch version {data.get('v')!r}")
    events = [Event.from_wire(wire) for wire in data["events"]]
    return int(data.get("wm", 0)), str(data.get("src") or ""), events
