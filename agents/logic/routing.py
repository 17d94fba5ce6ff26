"""The ingest step over a batch of raw input records: validate, key, group by partition.

Pure: records come in as plain tuples, a :class:`Routed` comes out, ``now_ms`` is a parameter.
Valid events are grouped by the ``events.by_user`` partition their user id hashes to (Kafka
murmur2), invalid ones become dead letters that keep the original key, value and headers, or
as much of them as fits ``IngestLimits.max_record_bytes`` (:mod:`agents.logic.dead_letters`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

from agents.logic.dead_letters import fit_dead_letter
from agents.logic.ingest import IngestLimits, Rejection, dead_letter_headers, ingest
from agents.logic.partitioning import partition_for
from agents.logic.wire import Decoder
from schemas.records import Event, Headers

_CACHE_LIMIT = 500_000


class RawRecord(NamedTuple):
    """One input record (a tuple: built per input message, ~5x cheaper than a frozen dataclass)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers | None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]
    rejection: Rejection


@dataclass(slots=True)
class Routed:
    batches: dict[int, list[Event]] = field(default_factory=dict)
    dead: list[DeadLetter] = field(default_factory=list)
    next_offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    newest_ms: dict[tuple[str, int], int] = field(default_factory=dict)  # per input partition


class Router:
    """Routes input records to ``partitions`` partitions; caches user -> partition."""

    def __init__(
        self, partitions: int, limits: IngestLimits, decoder: Decoder | None = None
    ) -> None:
        self.partitions = partitions
        self.limits = limits
        self.decoder = decoder  # wire-format (Schema Registry) values; None: dead-lettered
        self._cache: dict[str, int] = {}

    def partition_of(self, user_id: str) -> int:
        cache = self._cache
        part = cache.get(user_id)
        if part is None:
            if len(cache) >= _CACHE_LIMIT:
                cache.clear()
            part = cache[user_id] = partition_for(user_id.encode(), self.partitions)
        return part

    def route(self, records: Iterable[RawRecord], now_ms: int) -> Routed:
        routed = Routed()
        batches, offsets, newest = routed.batches, routed.next_offsets, routed.newest_ms
        for record in records:
            source = (record.topic, record.partition)
            offsets[source] = record.offset + 1
            result = ingest(record.value, record.headers, now_ms, self.limits, self.decoder)
            if isinstance(result, Event):
                batches.setdefault(self.partition_of(result.user_id), []).append(result)
                if result.timestamp_ms > newest.get(source, 0):
                    newest[source] = result.timestamp_ms
            else:
                headers = dead_letter_headers(
                    record.headers, result, record.topic, record.partition, record.offset, now_ms
                )
                routed.dead.append(self._dead_letter(record, headers, result))
        return routed

    def _dead_letter(
        self, record: RawRecord, headers: list[tuple[str, bytes | None]], rejection: Rejection
    ) -> DeadLetter:
        """The dead letter of ``record``, reduced if Kafka could not take it verbatim (a too
        large value keeps at most ``max_message_bytes`` of it)."""
        limits = self.limits
        key, value, headers = fit_dead_letter(
            record.key, record.value, headers, limits.max_record_bytes, limits.max_message_bytes
        )
        return DeadLetter(key, value, headers, rejection)
