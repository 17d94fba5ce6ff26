"""Avro and Protobuf input through a Confluent-compatible Schema Registry.

:class:`RegistryDecoder` is the :data:`agents.logic.wire.Decoder` the ingest stage uses when
``ENGAGEMENT_SCHEMA_REGISTRY_URL`` is set: it looks the schema id up (confluent-kafka's
``SchemaRegistryClient`` caches schemas by id, so the registry is asked once per id) and
decodes with confluent-kafka's deserializers:

- Avro: one ``AvroDeserializer`` without a reader schema, which yields the writer's record.
- Protobuf: ``ProtobufDeserializer`` needs a generated message class, and the worker has none.
  It is built from the registered schema instead: the schema's ``FileDescriptorProto`` goes
  into a descriptor pool, the message indexes of the frame pick the message, and
  ``GetMessageClass`` makes its class; one deserializer per (schema id, message) is kept. The
  message becomes a dict with the ``.proto`` field names (``MessageToDict``; top-level 64-bit
  integers stay integers, so ``timestamp`` may be epoch milliseconds).

An id the registry does not know is ``unknown_schema_id`` (remembered for
:data:`UNKNOWN_TTL_S`, so a flood of them does not flood the registry); a payload the schema
cannot read, or a Protobuf schema kept only as ``.proto`` text (which needs protoc to compile;
registries that follow Confluent hand out the compiled form when asked for
``format=serialized``), is ``undecodable_payload``. A registry that cannot answer (refused,
timed out, 5xx after the client's retries) raises :class:`~schemas.errors.RegistryUnavailable`:
the message is not dead-lettered for it; the ingest stage stops before committing it, the
worker exits (status 1) and, restarted, reads it again.
"""

from __future__ import annotations

import io
import time
from typing import Any

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.schema_registry.common.serde import SchemaId
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer
from google.protobuf import descriptor, json_format
from google.protobuf.empty_pb2 import Empty
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass

from agents.logic.shapes import Reason, Rejection
from agents.logic.wire import AVRO, PROTOBUF, jsonable, schema_format, schema_id
from schemas.errors import RegistryUnavailable

UNKNOWN_TTL_S = 30.0
MAX_PROTOBUF_TYPES = 1000  # (schema id, message) deserializers kept
NOT_FOUND = 404
_INT64 = {descriptor.FieldDescriptor.CPPTYPE_INT64, descriptor.FieldDescriptor.CPPTYPE_UINT64}


class RegistryDecoder:
    """Wire-format value -> decoded record (JSON types) or Rejection, via a Schema Registry."""

    def __init__(self, url: str, *, timeout_s: float = 10.0, cache_capacity: int = 1000) -> None:
        self.client = SchemaRegistryClient(
            {"url": url, "timeout": timeout_s, "cache.capacity": cache_capacity}
        )
        self._avro = AvroDeserializer(self.client)
        # reads the registered schema into a descriptor pool (its message type is unused)
        self._descriptors = ProtobufDeserializer(Empty, None, self.client)
        self._protobuf: dict[tuple[int, tuple[int, ...]], ProtobufDeserializer] = {}
        self._unknown: dict[int, float] = {}  # schema id -> monotonic time it was not found

    def __call__(self, value: bytes) -> Any:
        sid = schema_id(value)
        found = self._schema(sid)
        if isinstance(found, Rejection):
            return found
        kind = schema_format(found.schema_type, found.schema_str or "")
        if isinstance(kind, Rejection):
            return kind
        if kind == PROTOBUF:  # what ProtobufDeserializer asks for: fetched (and cached) now
            found = self._schema(sid, fmt="serialized")
            if isinstance(found, Rejection):
                return found
        try:
            if kind == AVRO:
                return jsonable(self._avro(value, None))
            return self._decode_protobuf(value, found)
        except SchemaRegistryError as exc:  # a referenced schema, looked up while decoding
            return self._lookup_failed(exc, sid)
        except Exception as exc:  # fastavro, protobuf and the serde raise many kinds
            return Rejection(Reason.UNDECODABLE_PAYLOAD, f"{kind} payload: {_first_line(exc)}")

    def _schema(self, sid: int, fmt: str | None = None) -> Schema | Rejection:
        """The registered schema of ``sid`` (cached by the client), or unknown_schema_id."""
        seen = self._unknown.get(sid)
        if seen is not None and time.monotonic() - seen < UNKNOWN_TTL_S:
            return _unknown(sid)
        try:
            return self.client.get_schema(sid, None, fmt)
        except SchemaRegistryError as exc:
            return self._lookup_failed(exc, sid)
        except Exception as exc:  # the HTTP client's own errors: refused, timed out, TLS
            raise RegistryUnavailable(
                f"Schema Registry lookup of schema id {sid} failed: {type(exc).__name__}: {exc}"
            ) from exc

    def _lookup_failed(self, exc: SchemaRegistryError, sid: int) -> Rejection:
        if exc.http_status_code == NOT_FOUND:
            if len(self._unknown) > 10_000:
                self._unknown.clear()
            self._unknown[sid] = time.monotonic()
            return _unknown(sid)
        raise RegistryUnavailable(f"Schema Registry lookup of schema id {sid} failed: {exc}")

    def _decode_protobuf(self, value: bytes, schema: Schema) -> Any:
        frame = SchemaId(PROTOBUF)
        frame.from_bytes(io.BytesIO(value))
        indexes = tuple(frame.message_indexes or [0])
        key = (schema_id(value), indexes)
        deserializer = self._protobuf.get(key)
        if deserializer is None:
            if len(self._protobuf) >= MAX_PROTOBUF_TYPES:
                self._protobuf.clear()
            deserializer = ProtobufDeserializer(
                self._message_class(schema, indexes), None, self.client
            )
            self._protobuf[key] = deserializer
        message = deserializer(value, None)
        return _message_dict(message)

    def _message_class(self, schema: Schema, indexes: tuple[int, ...]) -> type[Message]:
        text = schema.schema_str or ""
        if text.lstrip().startswith(("syntax", "package", "message", "import", "option", "//")):
            raise ValueError(
                "the registry keeps this schema as .proto text only; decoding needs its "
                "compiled form (FileDescriptorProto)"
            )
        schema = Schema(text, PROTOBUF, schema.references)
        file_proto, pool = self._descriptors._get_parsed_schema(schema)
        file_descriptor = pool.FindFileByName(file_proto.name)
        message = self._descriptors._get_message_desc(pool, file_descriptor, list(indexes))
        made: type[Message] = GetMessageClass(message)
        return made


def _message_dict(message: Message) -> dict[str, Any]:
    """A Protobuf message as a dict with the .proto field names; top-level 64-bit integers as
    integers (``MessageToDict`` writes them as strings, as proto3 JSON does)."""
    result: dict[str, Any] = json_format.MessageToDict(message, preserving_proto_field_name=True)
    for field in message.DESCRIPTOR.fields:
        raw = result.get(field.name)
        if field.cpp_type in _INT64 and isinstance(raw, str):
            result[field.name] = int(raw)
    return result


def _unknown(sid: int) -> Rejection:
    return Rejection(Reason.UNKNOWN_SCHEMA_ID, f"the Schema Registry has no schema id {sid}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]
