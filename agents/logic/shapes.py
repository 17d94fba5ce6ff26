"""Input shapes -> the canonical event dict, for :mod:`agents.logic.ingest`.

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

The mappers only rename and pick fields; :mod:`agents.logic.ingest` applies the JSON Schema
and the guards to what they return. :class:`Reason` and :class:`Rejection` live here because a
recogniser may already answer with one (``agents.logic.ingest`` re-exports both).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

__all__ = [
    "CANONICAL_KEYS",
    "CE_STRUCTURED",
    "SEGMENT_EVENT_TYPES",
    "Reason",
    "Rejection",
    "normalise",
]

CE_STRUCTURED: Final = "application/cloudevents+json"
SEGMENT_EVENT_TYPES: Final = {"track": "", "page": "page_view", "screen": "screen_view"}
_CANONICAL_ORDER: Final = ("event_id", "user_id", "event_type", "timestamp")
CANONICAL_KEYS: Final = frozenset(_CANONICAL_ORDER)


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
    UNKNOWN_SCHEMA_ID = "unknown_schema_id"  # wire format: the registry has no such schema
    UNDECODABLE_PAYLOAD = "undecodable_payload"  # wire format: the schema cannot read it


@dataclass(frozen=True, slots=True)
class Rejection:
    """An input that cannot become an Event. ``message`` names fields, never their values."""

    reason: Reason
    message: str


def normalise(obj: Any, meta: Mapping[str, str] | None) -> tuple[dict[str, Any], str] | Rejection:
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
    if _has_canonical_key(obj):
        return obj, "canonical"
    return Rejection(
        Reason.UNKNOWN_SHAPE,
        "no known shape: expected canonical fields (event_id, user_id, event_type, timestamp), "
        "a CloudEvent (specversion, id, source, type) or a Segment call (type, messageId)",
    )


def _has_canonical_key(obj: dict[str, Any]) -> bool:
    """``not CANONICAL_KEYS.isdisjoint(obj)``, as four dict lookups: compiled, ``isdisjoint``
    is a method call that walks every key of ``obj`` (~2,400 instructions an event)."""
    for key in _CANONICAL_ORDER:  # noqa: SIM110 (compiled, a loop beats any() over a generator)
        if key in obj:
            return True
    return False


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


_CE_CONSUMED: Final = frozenset(("user_id", "timestamp", "channel", "platform", "session_id"))


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
