"""The ingest stage's pure logic: raw Kafka value + headers -> canonical ``Event`` | ``Rejection``.

    bytes, headers --size--> --decode (orjson)--> --shape--> canonical dict
        --user id, version--> --JSON Schema (compiled once)--> --timestamp--> Event
    any step may answer Rejection(reason, message) instead; nothing here raises on input.

Shapes (CloudEvents binary and structured mode, Segment / RudderStack, canonical) are
recognised, not configured, and mapped to the canonical dict by :mod:`agents.logic.shapes`,
which documents the rules and the field mappings.

A value in the Confluent wire format (0x00 + 4-byte schema id: Avro or Protobuf through a
Schema Registry) is decoded by the ``decoder`` passed in (:mod:`agents.logic.wire`) instead of
orjson, and the record it yields is recognised like a decoded JSON value.

Every shape becomes the canonical dict and is then validated by the same compiled JSON Schema,
so the contract is written once. Shapes other than canonical produce ``schema_version`` 1.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

import fastjsonschema
import orjson

from agents.logic.plain_events import plainly_valid
from agents.logic.shapes import Reason, Rejection, normalise
from agents.logic.wire import Decoder, framed
from schemas import load_schema
from schemas.records import Event, Headers
from schemas.timestamps import (
    MAX_TIMESTAMP_MS,
    MIN_TIMESTAMP_MS,
    TIMESTAMP_RULE,
    event_time_ms,
)

# Kafka headers as a list of pairs, or a mapping (as some clients hand them over)
HeaderPairs = Headers | Mapping[str, bytes | None]
"""Kafka headers as confluent-kafka gives them (a list of pairs) or as a mapping."""

__all__ = [
    "ERROR_HEADER_PREFIX",
    "HeaderPairs",
    "IngestLimits",
    "Reason",
    "Rejection",
    "dead_letter_headers",
    "error_headers",
    "extract_user_id",
    "ingest",
    "limits_from",
]


@dataclass(frozen=True, slots=True)
class IngestLimits:
    max_message_bytes: int
    max_future_skew_ms: int
    schema_versions: frozenset[int]
    max_record_bytes: int = 512 * 1024  # largest record ingest writes (dead letters included)


def limits_from(
    max_message_bytes: int,
    max_future_skew_s: float,
    schema_versions: Iterable[int],
    max_record_bytes: int = 512 * 1024,
) -> IngestLimits:
    """IngestLimits from the Settings fields of the same names."""
    return IngestLimits(
        max_message_bytes=int(max_message_bytes),
        max_future_skew_ms=round(max_future_skew_s * 1000),
        schema_versions=frozenset(schema_versions),
        max_record_bytes=int(max_record_bytes),
    )


MAX_DEPTH: Final = 64  # JSON nesting well under orjson.dumps' own limit (254), for re-serialising
ERROR_HEADER_PREFIX: Final = "engagement.error."

_SCHEMA: Final = load_schema("user_event")
_REQUIRED: Final[tuple[str, ...]] = tuple(_SCHEMA["required"])
_VALIDATE: Final = fastjsonschema.compile(_SCHEMA)  # once, at import: a bad schema fails the start


def ingest(
    value: bytes | None,
    headers: HeaderPairs | None,
    now_ms: int,
    limits: IngestLimits,
    decoder: Decoder | None = None,
) -> Event | Rejection:
    """Turn one input message into a canonical Event, or say why not. Never raises on input
    (``decoder``, which reads wire-format values, may raise when its registry cannot answer)."""
    if value is not None and len(value) > limits.max_message_bytes:
        return Rejection(
            Reason.TOO_LARGE,
            f"message value is {len(value)} bytes; the limit is {limits.max_message_bytes}",
        )
    meta = _read_headers(headers) if headers else None
    if isinstance(meta, Rejection):
        return meta
    if meta is not None and "ce_specversion" in meta:
        data = _binary_data(value, meta.get("content-type"))
        if isinstance(data, Rejection):
            return data
        normalised = normalise(data, meta)
    elif not value:
        return Rejection(Reason.EMPTY, "message value is empty (null or zero bytes)")
    else:
        obj = _decode(value) if not framed(value) else _decode_framed(value, decoder)
        if isinstance(obj, Rejection):
            return obj
        normalised = normalise(obj, meta)
    if isinstance(normalised, Rejection):
        return normalised
    return _finish(normalised[0], normalised[1], now_ms, limits)


def extract_user_id(obj: Any, headers: HeaderPairs | None = None) -> str | None:
    """The user id a payload of any shape carries (``obj`` is the decoded value, or ``data``
    for a binary-mode CloudEvent), by the same rules as :func:`ingest`; None if it has none."""
    meta = _read_headers(headers) if headers else None
    normalised = normalise(obj, None if isinstance(meta, Rejection) else meta)
    if isinstance(normalised, Rejection):
        return None
    user = normalised[0].get("user_id")
    return user if isinstance(user, str) and user.strip() else None


def dead_letter_headers(  # noqa: PLR0917 (positional signature shared with the agent)
    original: HeaderPairs | None,
    rejection: Rejection,
    topic: str,
    partition: int,
    offset: int,
    now_ms: int,
) -> list[tuple[str, bytes | None]]:
    """The original headers plus the error headers of ``rejection`` (see :func:`error_headers`)."""
    return error_headers(
        original, str(rejection.reason), rejection.message, topic, partition, offset, now_ms
    )


def error_headers(  # noqa: PLR0917 (the six error fields, positionally)
    original: HeaderPairs | None,
    reason: str,
    message: str,
    topic: str,
    partition: int,
    offset: int,
    now_ms: int,
) -> list[tuple[str, bytes | None]]:
    """The original headers (null values kept; earlier ``engagement.error.*`` headers dropped,
    so a replayed dead letter carries one set) plus the error headers, all UTF-8 text. Shared
    by the dead-letter topic and the activity stage's quarantine topic."""
    kept = [
        (name, raw.encode() if isinstance(raw, str) else raw)
        for name, raw in _pairs(original)
        if not name.startswith(ERROR_HEADER_PREFIX)
    ]
    added = {
        "reason": reason,
        "message": message[:1000],
        "topic": topic,
        "partition": str(partition),
        "offset": str(offset),
        "timestamp": str(now_ms),
    }
    kept.extend((ERROR_HEADER_PREFIX + key, text.encode()) for key, text in added.items())
    return kept


# -- decoding ------------------------------------------------------------------------------


def _pairs(headers: HeaderPairs | None) -> Iterator[tuple[str, Any]]:
    """(name, value) pairs of well-formed headers; anything else is skipped, not raised on."""
    items = headers.items() if isinstance(headers, Mapping) else headers or ()
    for item in items:
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
            yield item


def _read_headers(headers: HeaderPairs) -> dict[str, str] | Rejection:
    """The headers that decide the shape (``ce_*``, ``content-type``), lower-cased and decoded;
    the last of repeated headers wins. Other headers are not looked at."""
    meta: dict[str, str] = {}
    for original_name, raw in _pairs(headers):
        name = original_name.lower()
        if not (name.startswith("ce_") or name == "content-type"):
            continue
        if isinstance(raw, bytes):
            try:
                meta[name] = raw.decode()
            except UnicodeDecodeError:
                return Rejection(Reason.NOT_UTF8, f"header {name} is not valid UTF-8")
        elif isinstance(raw, str):
            meta[name] = raw
    return meta


def _decode(value: bytes) -> Any:
    """orjson-decoded value, or a Rejection (invalid JSON, not UTF-8, nested too deep)."""
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        if not value.strip():
            return Rejection(Reason.EMPTY, "message value is only whitespace")
        try:
            value.decode()
        except UnicodeDecodeError:
            return Rejection(Reason.NOT_UTF8, "message value is not valid UTF-8")
        return Rejection(Reason.INVALID_JSON, f"not valid JSON: {exc.msg} at char {exc.pos}")
    if _too_deep(obj):
        return Rejection(Reason.INVALID_JSON, f"JSON nested deeper than {MAX_DEPTH} levels")
    return obj


def _decode_framed(value: bytes, decoder: Decoder | None) -> Any:
    """A wire-format value through the registry decoder, or a Rejection when there is none."""
    if decoder is None:
        return Rejection(
            Reason.UNKNOWN_SCHEMA_ID,
            "wire-format value (0x00 + schema id) but Schema Registry input is off "
            "(ENGAGEMENT_SCHEMA_REGISTRY_URL is empty)",
        )
    return decoder(value)


def _too_deep(obj: Any) -> bool:
    """Whether ``obj`` nests containers more than :data:`MAX_DEPTH` levels deep. An object whose
    members hold no container below their own items (an event's usual shape, its properties
    included: at most two levels) is answered without the walk. (Counting the value's brackets
    first, as this did before, scanned every value twice: ~3,600 instructions an event.)"""
    if isinstance(obj, dict):
        for child in obj.values():
            # a tuple of types: compiled, ``dict | list`` builds a union object per call
            if isinstance(child, (dict, list)) and not _flat(child):
                return _depth(obj) > MAX_DEPTH
        return False
    return _depth(obj) > MAX_DEPTH


def _flat(container: dict[str, Any] | list[Any]) -> bool:
    """Whether none of the container's items is a container."""
    items = container.values() if isinstance(container, dict) else container
    for item in items:  # noqa: SIM110 (compiled, a loop is cheaper than all() over a generator)
        if isinstance(item, (dict, list)):
            return False
    return True


def _depth(obj: Any) -> int:
    """Nesting depth of containers, without recursion; stops once past MAX_DEPTH."""
    if not isinstance(obj, dict | list):
        return 0
    deepest = 0
    stack: list[tuple[Any, int]] = [(obj, 1)]
    while stack and deepest <= MAX_DEPTH:
        node, level = stack.pop()
        deepest = max(deepest, level)
        children = node.values() if isinstance(node, dict) else node
        stack.extend((child, level + 1) for child in children if isinstance(child, dict | list))
    return deepest


def _binary_data(value: bytes | None, content_type: str | None) -> Any:
    """``data`` of a binary-mode CloudEvent: JSON unless the content type says otherwise."""
    if not value:
        return None
    media = (content_type or "application/json").split(";", 1)[0].strip().lower()
    if media.endswith(("/json", "+json")):
        return _decode(value)
    return None  # not JSON: the event's facts come from the ce_* headers alone


# -- contract and guards -------------------------------------------------------------------


def _finish(
    event: dict[str, Any], shape: str, now_ms: int, limits: IngestLimits
) -> Event | Rejection:
    user = event.get("user_id")
    if user is None or (isinstance(user, str) and not user.strip()):
        return Rejection(Reason.MISSING_USER_ID, "user_id is missing or blank")
    version = event.get("schema_version", 1)
    if type(version) is int and version not in limits.schema_versions:
        accepted = ", ".join(str(v) for v in sorted(limits.schema_versions))
        return Rejection(
            Reason.UNKNOWN_SCHEMA_VERSION, f"schema_version is not one of the accepted: {accepted}"
        )
    if not plainly_valid(event):
        try:
            _VALIDATE(event)
        except fastjsonschema.JsonSchemaValueException as exc:
            return _schema_rejection(exc, event)
    stamp = event["timestamp"]
    # event_time_ms's own first test, here where it runs compiled: schemas/ runs interpreted,
    # and calling into it cost ~5 % of ingest when every timestamp is epoch milliseconds
    if type(stamp) is int and MIN_TIMESTAMP_MS <= stamp <= MAX_TIMESTAMP_MS:
        timestamp_ms: int | None = stamp
    else:
        timestamp_ms = event_time_ms(stamp)
    if timestamp_ms is None:
        return Rejection(Reason.INVALID_TIMESTAMP, TIMESTAMP_RULE)
    if timestamp_ms > now_ms + limits.max_future_skew_ms:
        return Rejection(
            Reason.FUTURE_TIMESTAMP,
            f"timestamp is more than {limits.max_future_skew_ms} ms ahead of the clock",
        )
    return Event(  # positional (field order of Event): measurably cheaper on the hot path
        event["event_id"],
        user,
        event["event_type"],
        timestamp_ms,
        event.get("channel"),  # compiled, a dict's get is a primitive (a bound one is a call)
        event.get("platform"),
        event.get("session_id"),
        event.get("properties"),
        int(version),
        shape,
    )


def _schema_rejection(
    exc: fastjsonschema.JsonSchemaValueException, event: dict[str, Any]
) -> Rejection:
    name = exc.name or "data"
    if exc.rule == "required":
        missing = ", ".join(key for key in _REQUIRED if key not in event)
        return Rejection(Reason.SCHEMA_VIOLATION, f"required field(s) missing: {missing}")
    if name.startswith("data.timestamp"):
        return Rejection(Reason.INVALID_TIMESTAMP, TIMESTAMP_RULE)
    # fastjsonschema names the event "data"; its messages name fields and rules, not values.
    return Rejection(Reason.SCHEMA_VIOLATION, exc.message.replace("data.", "", 1))
