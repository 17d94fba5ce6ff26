"""The publisher's pure parts: reading files, keying by user id, counting deliveries.
A fake producer stands in for confluent-kafka; the real one is exercised by integration tests."""

from __future__ import annotations

import gzip
import io
from pathlib import Path
from typing import Any

import orjson
import pytest

from schemas.errors import InvalidEvent
from schemas.records import Event
from streams.settings import Settings
from streams.tools.publish import EventPublisher, guess_format, publish_command, read_events

SETTINGS = Settings()
CANONICAL = {
    "event_id": "e-1",
    "user_id": "u-1",
    "event_type": "click",
    "timestamp": 1_714_564_800_000,
}
CE_HEADERS: list[tuple[str, bytes | None]] = [
    ("ce_specversion", b"1.0"),
    ("ce_id", b"1"),
    ("ce_source", b"/s"),
    ("ce_type", b"t"),
    ("ce_userid", b"u-5"),
]


class FakeProducer:
    """Records produce() calls; flush() reports each as delivered unless its value is b"fail"."""

    def __init__(self, buffer_errors: int = 0) -> None:
        self.records: list[dict[str, Any]] = []
        self._pending: list[tuple[Any, bytes | None]] = []
        self._buffer_errors = buffer_errors
        self.polls = 0

    def produce(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        *,
        on_delivery: Any = None,
        headers: Any = None,
    ) -> None:
        if self._buffer_errors:
            self._buffer_errors -= 1
            raise BufferError("queue full")
        self.records.append({"topic": topic, "value": value, "key": key, "headers": headers})
        self._pending.append((on_delivery, value))

    def poll(self, timeout: float) -> int:
        self.polls += 1
        return 0

    def flush(self, timeout: float) -> int:
        for callback, value in self._pending:
            callback("broker said no" if value == b"fail" else None, None)
        self._pending.clear()
        return 0


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# -- read_events ----------------------------------------------------------------------------


def test_guess_format() -> None:
    assert [
        guess_format(n) for n in ("a.csv", "A.CSV.gz", "e.json", "e.jsonl", "e.ndjson", "-")
    ] == ["csv", "csv", "json", "jsonl", "jsonl", "jsonl"]


def test_jsonl_skips_blank_lines(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "e.jsonl", orjson.dumps(CANONICAL).decode() + "\n\n  \n" + '{"a": 1}\n'
    )
    assert list(read_events(path)) == [CANONICAL, {"a": 1}]


def test_jsonl_bad_lines_are_reported_with_their_number(tmp_path: Path) -> None:
    path = _write(tmp_path / "e.jsonl", '{"a": 1}\n{not json\n[1, 2]\n{"b": 2}\n')
    errors: list[tuple[int, str]] = []
    records = list(read_events(path, on_error=lambda line, why: errors.append((line, why))))
    assert records == [{"a": 1}, {"b": 2}]
    assert [line for line, _ in errors] == [2, 3]
    assert "not valid JSON" in errors[0][1] and "not a JSON object" in errors[1][1]


def test_jsonl_bad_line_without_handler_raises_invalid_event(tmp_path: Path) -> None:
    path = _write(tmp_path / "e.jsonl", '{"a": 1}\n{not json\n')
    with pytest.raises(InvalidEvent, match="line 2"):
        list(read_events(path))


def test_json_document_object_or_array(tmp_path: Path) -> None:
    one = _write(
        tmp_path / "one.json", orjson.dumps(CANONICAL, option=orjson.OPT_INDENT_2).decode()
    )
    many = _write(tmp_path / "many.json", orjson.dumps([CANONICAL, {"a": 1}]).decode())
    assert list(read_events(one)) == [CANONICAL]
    assert list(read_events(many)) == [CANONICAL, {"a": 1}]


def test_csv_maps_columns_to_canonical_fields(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "e.csv",
        (
            "event_id,user_id,event_type,timestamp,channel,properties.plan,properties.seats,extra\n"
            "e-1,u-1,click,1714564800000,email,pro,3,x\n"
            "e-2,u-2,view,2024-05-01T12:00:00Z,,,,\n"
        ),
    )
    assert list(read_events(path)) == [
        {
            "event_id": "e-1",
            "user_id": "u-1",
            "event_type": "click",
            "timestamp": 1_714_564_800_000,
            "channel": "email",
            "properties": {"plan": "pro", "seats": "3"},
            "extra": "x",
        },
        {
            "event_id": "e-2",
            "user_id": "u-2",
            "event_type": "view",
            "timestamp": "2024-05-01T12:00:00Z",
        },
    ]


def test_gzip_and_explicit_format_and_text_streams(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write(orjson.dumps(CANONICAL).decode() + "\n")
    assert list(read_events(path)) == [CANONICAL]
    stream = io.StringIO("user_id,timestamp\nu-1,1714564800000\n")
    assert list(read_events(stream, fmt="csv")) == [
        {"user_id": "u-1", "timestamp": 1_714_564_800_000}
    ]


def test_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO('{"a": 1}\n'))
    assert list(read_events("-")) == [{"a": 1}]


def test_unknown_format() -> None:
    with pytest.raises(ValueError, match="unknown format"):
        list(read_events(io.StringIO(""), fmt="xml"))


# -- EventPublisher -------------------------------------------------------------------------


def test_publish_keys_every_shape_by_its_user_id() -> None:
    producer = FakeProducer()
    publisher = EventPublisher(SETTINGS, producer=producer)
    publisher.publish(CANONICAL)
    publisher.publish({"type": "track", "messageId": "m", "anonymousId": "anon-1", "event": "x"})
    publisher.publish(Event("e-3", "u-3", "click", 1_714_564_800_000))
    publisher.publish(b'{"specversion":"1.0","id":"1","source":"/s","type":"t","subject":"u-4"}')
    publisher.publish(b"", headers=CE_HEADERS)
    publisher.publish(b"not json at all")
    publisher.publish({"no": "user"})
    keys = [record["key"] for record in producer.records]
    assert keys == [b"u-1", b"anon-1", b"u-3", b"u-4", b"u-5", None, None]
    assert {record["topic"] for record in producer.records} == {SETTINGS.input_topic}
    assert orjson.loads(producer.records[0]["value"]) == CANONICAL
    assert producer.records[4]["headers"] == CE_HEADERS


def test_flush_counts_deliveries_and_failures() -> None:
    producer = FakeProducer(buffer_errors=2)
    with EventPublisher(SETTINGS, "other.topic", producer=producer) as publisher:
        publisher.publish(CANONICAL)
        publisher.publish(b"fail")
        publisher.publish({"bad": {1, 2}})  # a set is not JSON
        summary = publisher.flush(1.0)
    assert (summary.sent, summary.delivered, summary.failed, summary.pending) == (3, 1, 2, 0)
    assert not summary.ok
    assert (
        summary.errors[0].startswith("not serialisable") and summary.errors[1] == "broker said no"
    )
    assert producer.records[0]["topic"] == "other.topic"


# -- publish_command ------------------------------------------------------------------------


def test_publish_command_all_delivered(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "e.jsonl",
        "\n".join(orjson.dumps({**CANONICAL, "event_id": f"e-{i}"}).decode() for i in range(3)),
    )
    out = io.StringIO()
    producer = FakeProducer()
    assert publish_command(str(path), SETTINGS, topic="t", out=out, producer=producer) == 0
    assert len(producer.records) == 3
    assert "3 records, 3 delivered, 0 failed" in out.getvalue()


def test_publish_command_reports_bad_lines_and_fails(tmp_path: Path) -> None:
    path = _write(tmp_path / "e.jsonl", orjson.dumps(CANONICAL).decode() + "\n{oops\n")
    out = io.StringIO()
    assert publish_command(str(path), SETTINGS, out=out, producer=FakeProducer()) == 1
    text = out.getvalue()
    assert "line 2: not valid JSON" in text
    assert "2 records, 1 delivered, 1 failed (1 unreadable, 0 not delivered)" in text


def test_publish_command_missing_file(tmp_path: Path) -> None:
    out = io.StringIO()
    code = publish_command(str(tmp_path / "nope.jsonl"), SETTINGS, out=out, producer=FakeProducer())
    assert code == 1
    assert "cannot read" in out.getvalue()
