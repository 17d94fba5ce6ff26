"""The command line without a broker: help in plain words, exit codes, ``settings``, the
retention formats, dead letters as the schema renders them, and the JSON log format."""

from __future__ import annotations

import argparse
import csv
import io
import logging
from collections.abc import Iterator

import fastjsonschema
import orjson
import pytest

from schemas import load_schema
from schemas.errors import BrokerUnreachable, SettingsError, UsageError
from streams import exits
from streams.cli import build_parser, main
from streams.kafka import LibrdkafkaLog
from streams.logs import JsonFormatter, worker_logging_config
from streams.redaction import mask_secrets
from streams.settings import Settings
from streams.tools.dead_letters import DeadLetter, Replayer, summarise
from streams.tools.retention import Triangle, TriangleRow, render_csv, render_json
from streams.tools.settings_view import effective

RST_OR_PATHS = ("``", ":mod:", ":func:", ":class:", ":meth:", "streams.", "agents.", "schemas.")


@pytest.fixture(autouse=True)
def clean_logging() -> Iterator[None]:
    """main() installs a root handler and a masking record factory: undo both after a test."""
    root = logging.getLogger()
    handlers, level, factory = root.handlers[:], root.level, logging.getLogRecordFactory()
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        logging.setLogRecordFactory(factory)


def subparsers() -> dict[str, argparse.ArgumentParser]:
    action = build_parser()._subparsers._group_actions[0]  # type: ignore[union-attr]
    return dict(action.choices)  # type: ignore[arg-type]


def test_help_is_plain_words() -> None:
    texts = {"engagement": build_parser().format_help()}
    texts |= {name: parser.format_help() for name, parser in subparsers().items()}
    for name, text in texts.items():
        for bad in RST_OR_PATHS:
            assert bad not in text, f"engagement {name} --help shows {bad!r}"


def test_the_readme_signals_example_parses() -> None:
    argv = ["signals", "--kind", "dormant", "churned", "--kind", "reactivated"]
    args = build_parser().parse_args(argv)
    assert args.kind == ["dormant", "churned", "reactivated"]


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (SettingsError("ENGAGEMENT_X", "bad"), exits.USAGE),
        (UsageError("--now: bad"), exits.USAGE),
        (BrokerUnreachable("no broker"), exits.BROKER_UNREACHABLE),
        (FileNotFoundError(2, "No such file or directory", "/x"), exits.FILE_UNREADABLE),
        (RuntimeError("boom\nsecond line"), exits.FAILURE),
    ],
)
def test_explain_gives_one_line_and_the_documented_status(exc: Exception, status: int) -> None:
    got, line = exits.explain(exc)
    assert got == status
    assert "\n" not in line


def test_version_comes_from_the_package(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.startswith("engagement ")


def test_settings_shows_effective_values_with_secrets_masked(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ENGAGEMENT_API_TOKEN", "s3cr3t-token")
    monkeypatch.setenv("ENGAGEMENT_PARTITIONS", "12")
    assert main(["settings"]) == 0
    out = capsys.readouterr().out
    assert "ENGAGEMENT_PARTITIONS=12  (set; default '8')" in out
    assert "ENGAGEMENT_API_TOKEN=***" in out and "s3cr3t-token" not in out
    assert "ENGAGEMENT_TIMEZONE=UTC  (default)" in out
    rows = {env: value for env, value, _, _ in effective(Settings.from_env())}
    assert rows["ENGAGEMENT_PARTITIONS"] == "12"


def test_settings_markdown_is_the_table_of_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["settings", "--markdown"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("| variable | default | meaning |")
    assert "| `ENGAGEMENT_LOG_FORMAT` | `text` |" in out


# -- retention formats -------------------------------------------------------------------------
def triangle() -> Triangle:
    rows = (TriangleRow(100, None, 10, (10, 4, None)), TriangleRow(101, None, 0, (0, None, None)))
    return Triangle(today=101, columns=3, rows=rows, by_channel=False)


def test_retention_csv_has_one_row_per_known_cell() -> None:
    from agents.logic.days import Calendar

    rows = list(csv.DictReader(io.StringIO(render_csv(triangle(), Calendar("UTC")))))
    assert [(r["cohort"], r["day"], r["retained"], r["percent"]) for r in rows] == [
        ("1970-04-11", "0", "10", "100.0"),
        ("1970-04-11", "1", "4", "40.0"),
        ("1970-04-12", "0", "0", ""),
    ]


def test_retention_json_keeps_the_future_as_null() -> None:
    from agents.logic.days import Calendar

    document = orjson.loads(render_json(triangle(), Calendar("UTC")))
    assert document["today"] == "1970-04-12"
    assert document["cohorts"][0]["retained"] == [10, 4, None]
    assert document["cohorts"][0]["percent"] == [100.0, 40.0, None]


# -- dead letters ------------------------------------------------------------------------------
def letter(reason: str, offset: int, reduced: str | None = None) -> DeadLetter:
    headers: list[tuple[str, bytes | None]] = [("traceparent", b"00-abc"), ("x-null", None)]
    error = {
        "reason": reason,
        "message": "required field(s) missing: timestamp",
        "topic": "user.events",
        "partition": "3",
        "offset": str(offset),
        "timestamp": "1714564801000",
    }
    if reduced:
        error |= {"reduced": reduced, "original_bytes": "2000000", "value_sha256": "a" * 64}
    headers += [(f"engagement.error.{k}", v.encode()) for k, v in error.items()]
    return DeadLetter(0, offset, b"u-1", b'{"user_id":"u-1"}', headers)


def test_a_dead_letter_renders_as_the_schema_says() -> None:
    validate = fastjsonschema.compile(load_schema("dead_letter"))
    for item in (letter("schema_violation", 7), letter("too_large", 8, "value_truncated")):
        validate(item.to_json())
    assert letter("too_large", 8, "value_truncated").reduced
    assert not letter("empty", 1, "key_dropped").reduced


def test_summary_counts_by_reason_with_samples() -> None:
    letters = [letter("empty", i) for i in range(5)] + [letter("invalid_json", 9)]
    found = summarise(letters, samples=2)
    assert list(found) == ["empty", "invalid_json"]
    assert found["empty"].count == 5 and len(found["empty"].samples) == 2


class FakeProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes | None, object]] = []
        self.callbacks: list[object] = []

    def produce(
        self,
        topic: str,
        *,
        key: bytes | None,
        value: bytes | None,
        headers: object,
        on_delivery: object,
    ) -> None:
        self.sent.append((topic, key, value, headers))
        self.callbacks.append(on_delivery)

    def poll(self, timeout: float) -> int:
        return 0

    def flush(self, timeout: float) -> int:
        for callback in self.callbacks:
            callback(None, None)  # type: ignore[operator]
        self.callbacks.clear()
        return 0


def test_replay_sends_original_bytes_of_chosen_reasons_only() -> None:
    producer = FakeProducer()
    replayer = Replayer(producer, "user.events", ["schema_violation"])
    for item in (
        letter("schema_violation", 1),
        letter("empty", 2),
        letter("schema_violation", 3, "value_digest"),
    ):
        replayer(item)
    summary = replayer.finish()
    assert (summary.chosen, summary.sent, summary.delivered, summary.skipped_reduced) == (
        2,
        1,
        1,
        1,
    )
    topic, key, value, headers = producer.sent[0]
    assert (topic, key, value) == ("user.events", b"u-1", b'{"user_id":"u-1"}')
    assert headers == [("traceparent", b"00-abc"), ("x-null", None)]


# -- JSON logs ---------------------------------------------------------------------------------
def test_json_formatter_writes_one_object_per_line() -> None:
    record = logging.LogRecord("faust.worker", logging.INFO, __file__, 1, "a\nb %s", ("c",), None)
    line = JsonFormatter().format(record)
    assert "\n" not in line
    data = orjson.loads(line)
    assert (
        data["message"] == "a\nb c" and data["level"] == "INFO" and data["logger"] == "faust.worker"
    )
    assert data["time"].endswith("Z")


def test_json_logging_config_covers_faust_aiokafka_and_librdkafka(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mode.utils.logging import setup_logging

    stream = io.StringIO()
    monkeypatch.setattr("sys.stdout", stream)
    settings = Settings().replace(log_format="json", log_level="debug")
    config = worker_logging_config(settings)
    assert config is not None and worker_logging_config(Settings()) is None
    setup_logging(loglevel="debug", logging_config=config)  # what Faust's worker calls
    mask_secrets(["hunter2"])
    logging.getLogger("faust.worker").info("started with password hunter2")
    logging.getLogger("aiokafka.consumer").warning("rebalancing")
    LibrdkafkaLog().log(logging.ERROR, "%s [%s] %s", "FAIL", "rdkafka#1", "connect refused")
    try:
        raise ValueError("bad")
    except ValueError:
        logging.getLogger("engagement").exception("failed")
    lines = [orjson.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["logger"] for line in lines] == [
        "faust.worker", "aiokafka.consumer", "librdkafka", "engagement"
    ]  # fmt: skip
    assert lines[0]["message"] == "started with password ***"
    assert lines[2]["level"] == "DEBUG"  # librdkafka retries; its error callback reports
    assert "ValueError: bad" in lines[3]["exception"]


def test_a_bad_log_format_names_the_variable() -> None:
    with pytest.raises(SettingsError, match="ENGAGEMENT_LOG_FORMAT"):
        Settings.from_env({"ENGAGEMENT_LOG_FORMAT": "yaml"})


def test_readme_lists_every_exit_code() -> None:
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("<!-- exits:start -->")[1].split("<!-- exits:end -->")[0]
    rows = [line.split(" | ") for line in section.strip().splitlines()[2:]]
    documented = {int(cells[0].strip("| ")): cells[1].strip(" |") for cells in rows}
    assert documented == dict(exits.TABLE)
