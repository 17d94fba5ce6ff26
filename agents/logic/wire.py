"""Schema Registry input, the pure part: the Confluent wire format and registry records -> JSON.

    0x00 | schema id (4 bytes, big endian) | [Protobuf: message indexes] | Avro / Protobuf body

A value whose first byte is 0x00 (and that has the five header bytes) is framed; JSON never
starts with 0x00, so the two cannot be confused. :mod:`agents.logic.ingest` hands a framed
value to a :data:`Decoder` (the worker's is
:class:`streams.worker.registry_input.RegistryDecoder`, which asks the registry); what it
returns goes through the same shapes, JSON Schema and guards as a JSON value. A decoder
answers with a :class:`~agents.logic.shapes.Rejection` for an unknown schema id
(``unknown_schema_id``) or a payload the schema cannot read (``undecodable_payload``).

Which format a schema is: the registry's ``schemaType`` when it says ``PROTOBUF`` or ``JSON``;
when it says ``AVRO`` or nothing (Confluent omits it for Avro, and so do some compatible
registries for every type) the schema text decides: Avro schemas are JSON, Protobuf schemas
are ``.proto`` text or a base64 ``FileDescriptorProto``.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any, Final
from uuid import UUID

from agents.logic.shapes import Reason, Rejection

__all__ = [
    "AVRO",
    "HEADER_BYTES",
    "MAGIC_BYTE",
    "PROTOBUF",
    "Decoder",
    "framed",
    "jsonable",
    "schema_format",
    "schema_id",
]

MAGIC_BYTE: Final = 0
HEADER_BYTES: Final = 5  # magic byte + 4-byte schema id
AVRO: Final = "AVRO"
PROTOBUF: Final = "PROTOBUF"

Decoder = Callable[[bytes], Any]
"""Framed value -> the decoded record (dicts, lists, scalars) or a Rejection. Never raises on
input; may raise when the registry itself cannot be asked (the message is not at fault)."""


def framed(value: bytes | None) -> bool:
    """True when ``value`` is in the Confluent wire format (magic byte 0x00 + schema id)."""
    return value is not None and len(value) >= HEADER_BYTES and value[0] == MAGIC_BYTE


def schema_id(value: bytes) -> int:
    """The schema id of a framed value."""
    return int.from_bytes(value[1:HEADER_BYTES], "big")


def schema_format(schema_type: str | None, schema_text: str) -> str | Rejection:
    """``AVRO`` or ``PROTOBUF`` for a registered schema, or why it cannot be input."""
    kind = (schema_type or AVRO).upper()
    if kind == PROTOBUF:
        return PROTOBUF
    if kind != AVRO:
        return Rejection(
            Reason.UNDECODABLE_PAYLOAD,
            f"schema type {kind} is not read from the wire format; send plain JSON instead",
        )
    return AVRO if schema_text.lstrip()[:1] in {"{", "[", '"'} else PROTOBUF


def jsonable(value: Any) -> Any:
    """A decoded record as JSON types: datetimes become RFC 3339 text (naive ones are UTC),
    dates and times ISO text, decimals and UUIDs text, bytes base64 (Avro logical types)."""
    if isinstance(value, Mapping):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    if isinstance(value, datetime):
        text = value.isoformat()
        return text if value.tzinfo is not None else text + "Z"
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, Decimal | UUID):
        return str(value)
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode("ascii")
    return value
