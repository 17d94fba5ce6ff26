"""Publish events to the input topic from a file or stdin (``engagement publish FILE|-``).

    file (JSON lines, a JSON array/object, or CSV with a header) --read_events--> dict
         --EventPublisher.publish (key = user id, any shape)--> Kafka input topic

The publisher does not validate: the ingest stage is the one place that decides what is a
valid event, and invalid records reach its dead-letter topic with a reason, as they would from
any upstream service. Lines that are not JSON at all are reported here with their line number.
"""

from __future__ import annotations

import csv
import gzip
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, TextIO

import orjson
from confluent_kafka import KafkaException, Producer

from agents.logic.ingest import extract_user_id
from schemas.errors import InvalidEvent
from schemas.records import Event, Headers
from streams.kafka import producer_config
from streams.settings import Settings

ErrorHandler = Callable[[int, str], None]
MAX_ERRORS_KEPT = 5
CSV_INTEGER_COLUMNS = ("timestamp", "schema_version")


class ProducerLike(Protocol):
    """The part of ``confluent_kafka.Producer`` the publisher uses (tests pass a fake)."""

    def produce(
        self,
        topic: str,
        value: bytes | None = ...,
        key: bytes | None = ...,
        *,
        on_delivery: Any = ...,
        headers: Any = ...,
    ) -> None: ...
    def poll(self, timeout: float) -> int: ...
    def flush(self, timeout: float) -> int: ...


@dataclass(frozen=True, slots=True)
class PublishSummary:
    sent: int
    delivered: int
    failed: int
    errors: tuple[str, ...] = ()

    @property
    def pending(self) -> int:
        """Records handed to the producer but neither delivered nor failed (flush timed out)."""
        return self.sent - self.delivered - self.failed

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.pending == 0


@dataclass
class _Counts:
    sent: int = 0
    delivered: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)

    def fail(self, error: str) -> None:
        self.failed += 1
        if len(self.errors) < MAX_ERRORS_KEPT:
            self.errors.append(error)


class EventPublisher:
    """A confluent-kafka producer that keys each payload by its user id (murmur2, like Java)."""

    def __init__(
        self, settings: Settings, topic: str | None = None, *, producer: ProducerLike | None = None
    ) -> None:
        self.topic = topic or settings.input_topic
        self._producer = producer if producer is not None else _kafka_producer(settings)
        self._counts = _Counts()

    def publish(
        self, payload: dict[str, Any] | Event | bytes, headers: Headers | None = None
    ) -> None:
        """Queue one record; delivery is reported to :meth:`flush`'s summary."""
        try:
            value, key = _encode(payload, headers)
        except (orjson.JSONEncodeError, TypeError) as exc:
            self._counts.sent += 1
            self._counts.fail(f"not serialisable: {exc}")
            return
        self._counts.sent += 1
        while True:
            try:
                self._producer.produce(
                    self.topic, value, key, on_delivery=self._on_delivery, headers=headers
                )
                break
            except BufferError:  # local queue full: let deliveries drain, then retry
                self._producer.poll(0.5)
            except KafkaException as exc:  # this record only: too large, bad topic...
                self._counts.fail(str(exc))
                return
        self._producer.poll(0)

    def flush(self, timeout: float = 30.0) -> PublishSummary:
        self._producer.flush(timeout)
        counts = self._counts
        return PublishSummary(counts.sent, counts.delivered, counts.failed, tuple(counts.errors))

    def _on_delivery(self, error: Any, _message: Any) -> None:
        if error is None:
            self._counts.delivered += 1
        else:
            self._counts.fail(str(error))

    def __enter__(self) -> EventPublisher:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.flush()


def _kafka_producer(settings: Settings) -> ProducerLike:
    producer: ProducerLike = Producer(producer_config(settings))
    return producer


def _encode(
    payload: dict[str, Any] | Event | bytes, headers: Headers | None
) -> tuple[bytes, bytes | None]:
    """(value, key) for a payload of any shape; no key when no user id can be found."""
    if isinstance(payload, Event):
        return payload.to_json(), payload.user_id.encode()
    if isinstance(payload, bytes):
        try:
            obj: Any = orjson.loads(payload) if payload else None
        except orjson.JSONDecodeError:
            obj = None
        value = payload
    else:
        obj, value = payload, orjson.dumps(payload)
    user = extract_user_id(obj, headers)
    return value, user.encode() if user is not None else None


# -- reading files -------------------------------------------------------------------------


def guess_format(name: str) -> str:
    """``csv``, ``json`` (one document) or ``jsonl`` from a file name (``.gz`` ignored)."""
    lowered = name.lower().removesuffix(".gz")
    if lowered.endswith(".csv"):
        return "csv"
    if lowered.endswith(".json"):
        return "json"
    return "jsonl"


def read_events(
    source: str | Path | TextIO, fmt: str | None = None, on_error: ErrorHandler | None = None
) -> Iterator[dict[str, Any]]:
    """Records of a JSON-lines, JSON or CSV file (``-`` = stdin; ``.gz`` files are unpacked).

    A record that cannot be read (not JSON, not an object) is passed to ``on_error(line, why)``
    and skipped; without ``on_error`` it raises :class:`InvalidEvent` naming the line.
    """
    report = on_error or _raise
    with ExitStack() as stack:
        stream, name = _open(source, stack)
        kind = fmt or guess_format(name)
        if kind == "csv":
            yield from _read_csv(stream, report)
        elif kind == "json":
            yield from _read_json(stream, report)
        elif kind == "jsonl":
            yield from _read_jsonl(stream, report)
        else:
            raise ValueError(f"unknown format {kind!r} (use jsonl, json or csv)")


def require_readable(source: str) -> None:
    """OSError naming the file (exit status 4) unless ``source`` is ``-`` or can be read."""
    if source != "-":
        with open(source, "rb"):
            pass


def _raise(line: int, why: str) -> None:
    raise InvalidEvent("invalid_json", f"line {line}: {why}")


def _open(source: str | Path | TextIO, stack: ExitStack) -> tuple[TextIO, str]:
    if not isinstance(source, str | Path):
        return source, str(getattr(source, "name", ""))
    if str(source) == "-":
        return sys.stdin, "-"
    path = Path(source)
    if path.name.endswith(".gz"):
        return stack.enter_context(gzip.open(path, "rt", encoding="utf-8", newline="")), path.name
    return stack.enter_context(path.open(encoding="utf-8", newline="")), path.name


def _read_jsonl(stream: TextIO, report: ErrorHandler) -> Iterator[dict[str, Any]]:
    for number, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            report(number, f"not valid JSON ({exc.msg})")
            continue
        if isinstance(record, dict):
            yield record
        else:
            report(number, "not a JSON object")


def _read_json(stream: TextIO, report: ErrorHandler) -> Iterator[dict[str, Any]]:
    try:
        document = orjson.loads(stream.read())
    except orjson.JSONDecodeError as exc:
        report(exc.lineno, f"not valid JSON ({exc.msg})")
        return
    records = document if isinstance(document, list) else [document]
    for index, record in enumerate(records, start=1):
        if isinstance(record, dict):
            yield record
        else:
            report(index, "array item is not a JSON object")


def _read_csv(stream: TextIO, report: ErrorHandler) -> Iterator[dict[str, Any]]:
    """Columns are canonical field names; ``properties.<name>`` columns become properties.
    Empty cells are left out; ``timestamp`` and ``schema_version`` cells that are whole numbers
    become integers (so epoch milliseconds stay numbers); other values stay strings."""
    reader = csv.DictReader(stream)
    for row in reader:
        record: dict[str, Any] = {}
        properties: dict[str, str] = {}
        for column, cell in row.items():
            if column is None or cell is None or cell == "":
                continue  # surplus cells (no header) and empty cells
            if column.startswith("properties."):
                properties[column.removeprefix("properties.")] = cell
            elif column in CSV_INTEGER_COLUMNS and cell.strip().lstrip("-").isdigit():
                record[column] = int(cell)
            else:
                record[column] = cell
        if properties:
            record["properties"] = properties
        if record:
            yield record
        else:
            report(reader.line_num, "empty row")


# -- the command ---------------------------------------------------------------------------


def publish_command(
    source: str,
    settings: Settings,
    *,
    topic: str | None = None,
    fmt: str | None = None,
    progress: bool = True,
    out: TextIO = sys.stderr,
    producer: ProducerLike | None = None,
) -> int:
    """Publish every record of ``source`` (``-`` = stdin); 0 if all were delivered, else 1."""
    unreadable: list[str] = []

    def bad_line(line: int, why: str) -> None:
        unreadable.append(f"line {line}: {why}")
        print(f"{source}: line {line}: {why}", file=out)

    show = progress and source != "-"
    publisher = EventPublisher(settings, topic, producer=producer)
    try:
        _publish_all(publisher, read_events(source, fmt, bad_line), show, out)
    except (OSError, UnicodeDecodeError, ValueError, csv.Error) as exc:
        print(f"{source}: cannot read: {exc}", file=out)
        unreadable.append(str(exc))
    summary = publisher.flush()
    _print_summary(summary, publisher.topic, len(unreadable), out)
    return 0 if summary.ok and not unreadable else 1


def _publish_all(
    publisher: EventPublisher, records: Iterator[dict[str, Any]], show: bool, out: TextIO
) -> None:
    last = time.monotonic()
    for count, record in enumerate(records, start=1):
        publisher.publish(record)
        if show and time.monotonic() - last >= 0.5:
            last = time.monotonic()
            print(f"\rpublished {count} records...", end="", file=out, flush=True)
    if show:
        print("\r" + " " * 40 + "\r", end="", file=out)


def _print_summary(summary: PublishSummary, topic: str, unreadable: int, out: TextIO) -> None:
    failed = summary.failed + unreadable
    print(
        f"{topic}: {summary.sent + unreadable} records, {summary.delivered} delivered, "
        f"{failed} failed ({unreadable} unreadable, {summary.failed} not delivered), "
        f"{summary.pending} unconfirmed",
        file=out,
    )
    for error in summary.errors:
        print(f"  delivery error: {error}", file=out)
