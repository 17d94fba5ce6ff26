"""The ingest step over a batch of raw input records: validate, key, group by partition.

Pure: records come in as plain tuples, a :class:`Routed` comes out, ``now_ms`` is a parameter.
Valid events are grouped by the ``events.by_user`` partition their user id hashes to (Kafka
murmur2), invalid ones become dead letters that keep the original key, value and headers, or
as much of them as fits ``IngestLimits.max_record_bytes`` (:mod:`agents.logic.dead_letters`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple, Protocol

from agents.logic.dead_letters import fit_dead_letter
from agents.logic.ingest import IngestLimits, Rejection, dead_letter_headers, ingest
from agents.logic.partitioning import partition_for
from agents.logic.wire import Decoder
from schemas.records import Event, Headers

_CACHE_LIMIT: Final = 500_000


class RawRecord(NamedTuple):
    """One input record (a tuple: built per input message, ~5x cheaper than a frozen dataclass)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers | None


class InputMessage(Protocol):
    """What :meth:`Router.route_messages` reads of a message: confluent-kafka's ``Message``."""

    def error(self) -> Any: ...
    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...
    def key(self) -> bytes | None: ...
    def value(self) -> bytes | None: ...
    def headers(self) -> Any: ...  # a list of pairs or a mapping, as ``ingest`` reads them
    def timestamp(self) -> tuple[int, int]: ...


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
    event_types: dict[str, int] = field(default_factory=dict)  # valid events per event type
    # route_messages only, per input partition: whether its last item was the partition's end,
    # the offset that end was at (-1: not given), the newest record timestamp; and the consumer
    # errors other than an end
    at_end: dict[tuple[str, int], bool] = field(default_factory=dict)
    end_offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    read_ms: dict[tuple[str, int], int] = field(default_factory=dict)
    errors: list[Any] = field(default_factory=list)
    read: int = 0  # records read (messages that are not errors)


class _Run:
    """Where a step is in one input partition's records in a row (``Consumer.consume`` returns
    them in runs per partition): its clocks are kept here and written to the :class:`Routed`
    dicts once per run, not once per record."""

    def __init__(self) -> None:
        self.source: tuple[str, int] = ("", -1)
        self.active = False
        self.read_ms = 0  # newest record timestamp
        self.newest_ms = 0  # newest valid event time
        self.next_offset = 0

    def reads(self, topic: str, partition: int) -> bool:
        return self.active and partition == self.source[1] and topic == self.source[0]

    def open(self, routed: Routed, source: tuple[str, int]) -> None:
        self.source, self.active = source, True
        self.read_ms = routed.read_ms.get(source, 0)
        self.newest_ms = routed.newest_ms.get(source, 0)

    def close(self, routed: Routed) -> None:
        """Its last record was not the partition's end; its next offset and clocks."""
        if not self.active:
            return
        source, self.active = self.source, False
        routed.at_end[source] = False
        routed.next_offsets[source] = self.next_offset
        if self.read_ms > 0:
            routed.read_ms[source] = self.read_ms
        if self.newest_ms > 0:
            routed.newest_ms[source] = self.newest_ms


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
        for record in records:
            self._route_one(routed, record, now_ms)
            routed.read += 1
        return routed

    def route_messages(
        self,
        messages: Iterable[InputMessage],
        now_ms: int,
        *,
        end_code: int,
        no_timestamp: int,
    ) -> Routed:
        """:meth:`route` over the messages of ``Consumer.consume``, read in this one compiled
        pass. Also notes per input partition whether its last item was its end (an error of
        code ``end_code``), the offset that end was at, and its newest record timestamp
        (``now_ms`` for a record whose timestamp type is ``no_timestamp``); other errors are
        kept in ``errors``. A record that is not an error but lacks its topic, partition or
        offset raises ValueError (it could be neither routed nor committed past)."""
        routed = Routed()
        run = _Run()  # the records of one input partition in a row, summed before the dicts
        for msg in messages:
            error = msg.error()
            topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
            if error is not None:
                if error.code() == end_code and topic is not None and partition is not None:
                    run.close(routed)
                    routed.at_end[(topic, partition)] = True
                    routed.end_offsets[(topic, partition)] = -1 if offset is None else offset
                else:
                    routed.errors.append(error)
                continue
            if topic is None or partition is None or offset is None:  # not skipped: stop
                raise ValueError(f"a record without its place: {topic}[{partition}]@{offset}")
            if not run.reads(topic, partition):
                run.close(routed)
                run.open(routed, (topic, partition))
            routed.read += 1
            kind, stamp = msg.timestamp()
            if kind == no_timestamp:
                stamp = now_ms
            if stamp > run.read_ms:  # noqa: PLR1730 (a compare, not a call to max, per record)
                run.read_ms = stamp
            run.next_offset = offset + 1
            result = ingest(msg.value(), msg.headers(), now_ms, self.limits, self.decoder)
            if isinstance(result, Event):
                self._batch(routed, result)
                if result.timestamp_ms > run.newest_ms:  # noqa: PLR1730 (as above)
                    run.newest_ms = result.timestamp_ms
            else:
                record = RawRecord(topic, partition, offset, msg.key(), msg.value(), msg.headers())
                self._reject(routed, record, result, now_ms)
        run.close(routed)
        return routed

    def _route_one(self, routed: Routed, record: RawRecord, now_ms: int) -> None:
        source = (record.topic, record.partition)
        routed.next_offsets[source] = record.offset + 1
        result = ingest(record.value, record.headers, now_ms, self.limits, self.decoder)
        if isinstance(result, Event):
            self._batch(routed, result)
            newest = routed.newest_ms
            if result.timestamp_ms > newest.get(source, 0):
                newest[source] = result.timestamp_ms
            return
        self._reject(routed, record, result, now_ms)

    def _batch(self, routed: Routed, event: Event) -> None:
        routed.batches.setdefault(self.partition_of(event.user_id), []).append(event)
        types = routed.event_types
        types[event.event_type] = types.get(event.event_type, 0) + 1

    def _reject(self, routed: Routed, record: RawRecord, result: Rejection, now_ms: int) -> None:
        headers = dead_letter_headers(
            record.headers, result, record.topic, record.partition, record.offset, now_ms
        )
        routed.dead.append(self._dead_letter(record, headers, result))

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
