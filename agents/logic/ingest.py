"""The ingest stage's pure logic: raw Kafka value + headers -> canonical ``Event`` | ``Rejection``.

    bytes, headers --size--> --decode (orjson)--> --shape--> canonical dict
        --user id, version--> --JSON Schema (compiled once)--> --timestamp--> Event
    any step may answer Rejection(reason, message) instead; nothing here raises on input.

Shapes are recognised, not configured (first rule that matches wins):

1. **CloudEvents 1.0, binary mode**: a ``ce_specversion`` header. Attributes come from the
   ``ce_*`` headers, ``content-type`` is ``datacontenttype``, the value is ``data`` (parsed as
   JSON unless the content type says otherwise; it may be empty).
2. **CloudEvents 1.0, structured mode**: header ``content-type: application/cloudevents+json``,
   or a JSON object with a ``specversion`` member. ``data_base64`` is not decoded.
3. **Segment / RudderStack**: a JSON object without ``event_id`` whose ``type`` is a string and
   that has ``messageId``, ``userId`` or ``anonymousId``. ``track`` calls are events;
   ``page`` and ``screen`` calls become ``page_view`` and ``screen_view``; other calls
   (identify, group, alias) are ``unknown_shape``.
4. **canonical**: a JSON object with any of ``event_id``, ``user_id``, ``event_type``,
   ``timestamp`` (see ``schemas/user_event.schema.json``).

CloudEvents mapping: ``event_id = f"{source}/{id}"`` (CloudEvents' dedup key is source + id);
``user_id`` = extension ``userid``, else ``data.user_id``, else ``subject`` (explicit beats
generic); ``event_type = type``; ``timestamp`` = ``time``, else ``data.timestamp``;
``channel`` / ``platform`` / ``session_id`` = extensions ``channel`` / ``platform`` /
``sessionid``, else the same-named members of ``data``; ``properties`` = ``data.properties``
if present, else the other members of an object ``data``, else ``{"data": data}``.

Segment mapping (RudderStack uses the same spec): ``event_id = messageId``; ``user_id`` =
``userId``, else ``anonymousId`` (numbers become strings); ``event_type = event``;
``timestamp`` = ``timestamp`` (event time, corrected for device clock skew by Segment), else
``originalTimestamp``, else ``sentAt``, else ``receivedAt``; ``channel`` =
``context.campaign.source``; ``platform`` = ``context.device.type``, else the top-level
``channel`` (RudderStack: web/mobile/server), else ``context.library.name``; ``session_id`` =
``context.sessionId``; ``properties = properties``.

Every shape becomes the canonical dict and is then validated by the same compiled JSON Schema,
so the contract is written once. Shapes other than canonical produce ``schema_version`` 1.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import fastjsonschema
import orjson

from schemas import load_schema
from schemas.records import Event

Headers = Sequence[tuple[str, bytes | None]] | Mapping[str, bytes | None]
"""Kafka headers as confluent-kafka gives them (a list of pairs) or as a mapping."""

__all__ = [
    "ERROR_HEADER_PREFIX",
    "Headers",
    "IngestLimits",
    "Reason",
    "Rejection",
    "dead_letter_headers",
    "extract_user_id",
    "ingest",
    "limits_from",
]


class Reason(StrEnum):
    """Why an input message was dead-lettered: a closed set, safe as a metric label."""

    TOO_LARGE = "too_large"
    EMPTY = "empty"
    NOT_UTF8 = "not_utf8"
    INVALID_JSON = "invalid_json"
    UNKNOWN_SHAPE = "unknown_shape"
    SCHEMA_VIOLATION = "schema_violation"
    MISSING_USER_ID = "missing_user_id"
    INVALID_TIMESTAMP = "invalid_timestamp"
    FUTURE_TIMESTAMP = "future_timestamp"
    UNKNOWN_SCHEMA_VERSION = "unknown_schema_version"


@dataclass(frozen=True, slots=True)
class Rejection:
    """An input that cannot become an Event. ``message`` names fields, never their values."""

    reason: Reason
    message: str


@dataclass(frozen=True, slots=True)
class IngestLimits:
    max_message_bytes: int
    max_future_skew_ms: int
    schema_versions: frozenset[int]


def limits_from(
    max_message_bytes: int, max_future_skew_s: float, schema_versions: Iterable[int]
) -> IngestLimits:
    """IngestLimits from the Settings fields of the same names."""
    return IngestLimits(
        max_message_bytes=int(max_message_bytes),
        max_future_skew_ms=round(max_future_skew_s * 1000),
        schema_versions=frozenset(schema_versions),
    )


MAX_DEPTH = 64  # JSON nesting kept well under orjson.dumps' own limit (254) for re-serialising
MIN_TIMESTAMP_MS = 100_000_000_000  # 1973-03-03: smaller values are epoch seconds by mistake
MAX_TIMESTAMP_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
ERROR_HEADER_PREFIX = "engagement.error."
CE_STRUCTURED = "application/cloudevents+json"
SEGMENT_EVENT_TYPES = {"track": "", "page": "page_view", "screen": "screen_view"}
CANONICAL_KEYS = frozenset(("event_id", "user_id", "event_type", "timestamp"))

_SCHEMA = load_schema("user_event")
_REQUIRED: tuple[str, ...] = tuple(_SCHEMA["required"])
_VALIDATE = fastjsonschema.compile(_SCHEMA)  # once, at import: a bad schema fails the start
_TIMESTAMP_RULE = (
    "timestamp must be an RFC 3339 date-time with Z or an offset, or integer epoch "
    "milliseconds, between 1973-03-03T09:46:40Z and 9999-12-31T23:59:59.999Z"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)


def ingest(
    value: bytes | None, headers: Headers | None, now_ms: int, limits: IngestLimits
) -> Event | Rejection:
    """Turn one input message into a canonical Event, or say why not. Never raises."""
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
        normalised = _normalise(data, meta)
    elif not value:
        return Rejection(Reason.EMPTY, "message value is empty (null or zero bytes)")
    else:
        obj = _decode(value)
        if isinstance(obj, Rejection):
            return obj
        normalised = _normalise(obj, meta)
    if isinstance(normalised, Rejection):
        return normalised
    return _finish(normalised[0], normalised[1], now_ms, limits)


def extract_user_id(obj: Any, headers: Headers | None = None) -> str | None:
    """The user id a payload of any shape carries (``obj`` is the decoded value, or ``data``
    for a binary-mode CloudEvent), by the same rules as :func:`ingest`; None if it has none."""
    meta = _read_headers(headers) if headers else None
    normalised = _normalise(obj, None if isinstance(meta, Rejection) else meta)
    if isinstance(normalised, Rejection):
        return None
    user = normalised[0].get("user_id")
    return user if isinstance(user, str) and user.strip() else None


def dead_letter_headers(  # noqa: PLR0917 (positional signature shared with the agent)
    original: Headers | None,
    rejection: Rejection,
    topic: str,
    partition: int,
    offset: int,
    now_ms: int,
) -> list[tuple[str, bytes | None]]:
    """The original headers (null values kept; earlier ``engagement.error.*`` headers dropped,
    so a replayed dead letter carries one set) plus the error headers, all UTF-8 text."""
    kept = [
        (name, raw.encode() if isinstance(raw, str) else raw)
        for name, raw in _pairs(original)
        if not name.startswith(ERROR_HEADER_PREFIX)
    ]
    added = {
        "reason": str(rejection.reason),
        "message": rejection.message[:1000],
        "topic": topic,
        "partition": str(partition),
        "offset": str(offset),
        "timestamp": str(now_ms),
    }
    kept.extend((ERROR_HEADER_PREFIX + key, text.encode()) for key, text in added.items())
    return kept


# -- decoding ------------------------------------------------------------------------------


def _pairs(headers: Headers | None) -> Iterator[tuple[str, Any]]:
    """(name, value) pairs of well-formed headers; anything else is skipped, not raised on."""
    items = headers.items() if isinstance(headers, Mapping) else headers or ()
    for item in items:
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
            yield item


def _read_headers(headers: Headers) -> dict[str, str] | Rejection:
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
    # Depth <= number of brackets, so the walk only runs for bracket-heavy messages.
    if value.count(b"[") + value.count(b"{") > MAX_DEPTH and _depth(obj) > MAX_DEPTH:
        return Rejection(Reason.INVALID_JSON, f"JSON nested deeper than {MAX_DEPTH} levels")
    return obj


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


# -- shapes --------------------------------------------------------------------------------


def _normalise(obj: Any, meta: Mapping[str, str] | None) -> tuple[dict[str, Any], str] | Rejection:
    """(canonical dict, shape) for a decoded value, or why it is no known shape."""
    if meta is not None and "ce_specversion" in meta:
        attrs = {name[3:]: text for name, text in meta.items() if name.startswith("ce_")}
        return _from_cloudevent(attrs, obj)
    if not isinstance(obj, dict):
        if obj is None:
            return Rejection(Reason.EMPTY, "message value is JSON null")
        kind = type(obj).__name__.replace("list", "array").replace("str", "string")
        return Rejection(Reason.UNKNOWN_SHAPE, f"a JSON {kind} is not an event (one per message)")
    content_type = meta.get("content-type", "") if meta else ""
    if "specversion" in obj or content_type.startswith(CE_STRUCTURED):
        return _from_cloudevent(obj, obj.get("data"))
    call = obj.get("type")
    if isinstance(call, str) and "event_id" not in obj and _looks_like_segment(obj):
        if call not in SEGMENT_EVENT_TYPES:
            return Rejection(
                Reason.UNKNOWN_SHAPE, "Segment call is not track, page or screen (not activity)"
            )
        return _from_segment(obj, call)
    if not CANONICAL_KEYS.isdisjoint(obj):
        return obj, "canonical"
    return Rejection(
        Reason.UNKNOWN_SHAPE,
        "no known shape: expected canonical fields (event_id, user_id, event_type, timestamp), "
        "a CloudEvent (specversion, id, source, type) or a Segment call (type, messageId)",
    )


def _looks_like_segment(obj: dict[str, Any]) -> bool:
    return "messageId" in obj or "userId" in obj or "anonymousId" in obj


def _from_cloudevent(attrs: Mapping[str, Any], data: Any) -> tuple[dict[str, Any], str] | Rejection:
    if attrs.get("specversion") != "1.0":
        return Rejection(Reason.UNKNOWN_SHAPE, "only CloudEvents specversion 1.0 is supported")
    missing = [n for n in ("id", "source", "type") if not _text(attrs.get(n))]
    if missing:
        return Rejection(
            Reason.SCHEMA_VIOLATION,
            f"CloudEvent attribute(s) missing or not a non-empty string: {', '.join(missing)}",
        )
    body: Mapping[str, Any] = data if isinstance(data, dict) else {}
    event = {
        "event_id": f"{attrs['source']}/{attrs['id']}",
        "user_id": _first(attrs.get("userid"), body.get("user_id"), attrs.get("subject")),
        "event_type": attrs["type"],
        "timestamp": _first(attrs.get("time"), body.get("timestamp")),
        "channel": _first(attrs.get("channel"), body.get("channel")),
        "platform": _first(attrs.get("platform"), body.get("platform")),
        "session_id": _first(attrs.get("sessionid"), body.get("session_id")),
        "properties": _cloudevent_properties(data),
    }
    return event, "cloudevents"


_CE_CONSUMED = frozenset(("user_id", "timestamp", "channel", "platform", "session_id"))


def _cloudevent_properties(data: Any) -> Any:
    if data is None:
        return None
    if not isinstance(data, dict):
        return {"data": data}
    if "properties" in data:
        return data["properties"]
    rest = {key: item for key, item in data.items() if key not in _CE_CONSUMED}
    return rest or None


def _from_segment(obj: dict[str, Any], call: str) -> tuple[dict[str, Any], str]:
    context = obj.get("context")
    ctx: dict[str, Any] = context if isinstance(context, dict) else {}
    event = {
        "event_id": obj.get("messageId"),
        "user_id": _first(_number_text(obj.get("userId")), _number_text(obj.get("anonymousId"))),
        "event_type": obj.get("event") if call == "track" else SEGMENT_EVENT_TYPES[call],
        "timestamp": _first(
            obj.get("timestamp"),
            obj.get("originalTimestamp"),
            obj.get("sentAt"),
            obj.get("receivedAt"),
        ),
        "channel": _dig(ctx, "campaign", "source"),
        "platform": _first(
            _dig(ctx, "device", "type"), obj.get("channel"), _dig(ctx, "library", "name")
        ),
        "session_id": _number_text(ctx.get("sessionId")),
        "properties": obj.get("properties"),
    }
    return event, "segment"


def _text(value: Any) -> bool:
    """A string with something other than whitespace in it."""
    return isinstance(value, str) and bool(value.strip())


def _first(*values: Any) -> Any:
    """The first value that is neither None nor a blank string (else None)."""
    for value in values:
        if value is not None and not (isinstance(value, str) and not value.strip()):
            return value
    return None


def _number_text(value: Any) -> Any:
    """Numbers (not booleans) as decimal strings; anything else unchanged."""
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


def _dig(obj: dict[str, Any], *path: str) -> Any:
    node: Any = obj
    for key in path:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


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
    try:
        _VALIDATE(event)
    except fastjsonschema.JsonSchemaValueException as exc:
        return _schema_rejection(exc, event)
    timestamp_ms = _timestamp_ms(event["timestamp"])
    if timestamp_ms is None:
        return Rejection(Reason.INVALID_TIMESTAMP, _TIMESTAMP_RULE)
    if timestamp_ms > now_ms + limits.max_future_skew_ms:
        return Rejection(
            Reason.FUTURE_TIMESTAMP,
            f"timestamp is more than {limits.max_future_skew_ms} ms ahead of the clock",
        )
    return Event(
        event_id=event["event_id"],
        user_id=user,
        event_type=event["event_type"],
        timestamp_ms=timestamp_ms,
        channel=event.get("channel"),
        platform=event.get("platform"),
        session_id=event.get("session_id"),
        properties=event.get("properties"),
        schema_version=int(event.get("schema_version", 1)),
        shape=shape,
    )


def _schema_rejection(
    exc: fastjsonschema.JsonSchemaValueException, event: dict[str, Any]
) -> Rejection:
    name = exc.name or "data"
    if exc.rule == "required":
        missing = ", ".join(key for key in _REQUIRED if key not in event)
        return Rejection(Reason.SCHEMA_VIOLATION, f"required field(s) missing: {missing}")
    if name.startswith("data.timestamp"):
        return Rejection(Reason.INVALID_TIMESTAMP, _TIMESTAMP_RULE)
    # fastjsonschema names the event "data"; its messages name fields and rules, not values.
    return Rejection(Reason.SCHEMA_VIOLATION, exc.message.replace("data.", "", 1))


def _timestamp_ms(value: Any) -> int | None:
    """Epoch ms of an RFC 3339 string (already matched by the schema) or an integer (ms)."""
    if isinstance(value, str):
        milliseconds = _parse_rfc3339(value)
        if milliseconds is None:
            return None
    else:
        milliseconds = int(value)
    return milliseconds if MIN_TIMESTAMP_MS <= milliseconds <= MAX_TIMESTAMP_MS else None


def _parse_rfc3339(text: str) -> int | None:
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
