"""A quick check that an event certainly passes the input JSON Schema.

Most input is the usual shape: the required strings, an integer timestamp, optional strings or
nulls. :func:`plainly_valid` says so in a few comparisons, with the limits read from
``schemas/user_event.schema.json``; anything else goes to the full validator (compiled by
fastjsonschema), which also words the rejection. It answers True only for events the schema
accepts: at import it checks that it knows every rule of the schema, and turns itself off if
not (a unit test holds it on for the schema as published).
"""

from __future__ import annotations

from typing import Any, Final

from schemas import load_schema

SCHEMA: Final[dict[str, Any]] = load_schema("user_event")
_PROPERTIES: Final[dict[str, Any]] = SCHEMA["properties"]
# What the plain-shape check below knows of the schema, (property, keyword) -> value; words
# that only describe are left out. A schema with any other rule turns the check off.
_DESCRIBING: Final = frozenset({"description", "default", "examples", "title", "$comment"})
_PLAIN_RULES: Final[dict[tuple[str, str], Any]] = {
    ("schema_version", "type"): "integer",
    ("event_id", "type"): "string",
    ("user_id", "type"): "string",
    # not starting with NUL (the store's reserved keys), and a character not whitespace (re
    # and str agree on which)
    ("user_id", "pattern"): "^(?!\\u0000)[\\s\\S]*\\S",
    ("event_type", "type"): "string",
    ("timestamp", "type"): ["string", "integer"],
    ("timestamp", "format"): "date-time",  # strings only: those go to the validator
    ("channel", "type"): ["string", "null"],
    ("platform", "type"): ["string", "null"],
    ("session_id", "type"): ["string", "null"],
    ("properties", "type"): ["object", "null"],
}
# the integer bounds it checks (their values are read from the schema below)
_BOUNDS: Final = frozenset(
    {
        *(
            (name, word)
            for name in ("event_id", "user_id", "event_type")
            for word in ("minLength", "maxLength")
        ),
        *((name, "maxLength") for name in ("channel", "platform", "session_id", "timestamp")),
        ("timestamp", "minimum"),
        ("timestamp", "maximum"),
        ("properties", "maxProperties"),
        ("schema_version", "minimum"),
    }
)


def _plain_check_applies(schema: dict[str, Any]) -> bool:
    """Whether :func:`plainly_valid` knows every rule of ``schema``."""
    top = {k for k in schema if k not in _DESCRIBING} - {"$schema", "$id", "type", "required"}
    if top - {"properties", "additionalProperties"} or schema.get("additionalProperties") is False:
        return False
    if schema.get("type") != "object":
        return False
    for name, rules in schema["properties"].items():
        for keyword, value in rules.items():
            known = _PLAIN_RULES.get((name, keyword))
            if keyword in _DESCRIBING or ((name, keyword) in _BOUNDS and type(value) is int):
                continue
            if known is None or known != value:
                return False
    return set(schema["required"]) == {"event_id", "user_id", "event_type", "timestamp"}


def _limit(name: str, keyword: str, default: int) -> int:
    value = _PROPERTIES.get(name, {}).get(keyword)
    return int(value) if value is not None else default


_PLAIN: Final = _plain_check_applies(SCHEMA)
_STRINGS: Final = tuple(
    (name, _limit(name, "minLength", 0), _limit(name, "maxLength", 1 << 62))
    for name in ("event_id", "user_id", "event_type")
)
_NULLABLE: Final = tuple(
    (n, _limit(n, "maxLength", 1 << 62)) for n in ("channel", "platform", "session_id")
)
_TS_MIN: Final = _limit("timestamp", "minimum", 0)
_TS_MAX: Final = _limit("timestamp", "maximum", 1 << 62)
_MAX_PROPERTIES: Final = _limit("properties", "maxProperties", 1 << 62)
_VERSION_MIN: Final = _limit("schema_version", "minimum", -(1 << 62))


def plainly_valid(event: dict[str, Any]) -> bool:
    """True only if ``event`` certainly passes the JSON Schema: the usual shape (required
    strings, an integer timestamp, optional strings or nulls) in a few comparisons, the limits
    read from the schema. Anything else (a string timestamp, a missing field, another type)
    goes to the full validator, which also words the rejection. In the bench's profile the
    validator took a quarter of the ingest process's time."""
    if not _PLAIN:
        return False
    for name, shortest, longest in _STRINGS:
        value = event.get(name)
        if type(value) is not str or not shortest <= len(value) <= longest:
            return False
    user: str = event["user_id"]
    if not user or user.isspace() or user[0] == "\x00":  # the pattern (above)
        return False
    stamp = event.get("timestamp")
    if type(stamp) is not int or not _TS_MIN <= stamp <= _TS_MAX:
        return False
    for name, longest in _NULLABLE:
        value = event.get(name)
        if value is not None and (type(value) is not str or len(value) > longest):
            return False
    properties = event.get("properties")
    if properties is not None and (
        type(properties) is not dict or len(properties) > _MAX_PROPERTIES
    ):
        return False
    version = event.get("schema_version", 1)
    return type(version) is int and version >= _VERSION_MIN
