"""engagement fit / retention / signals without a broker: pure parts and fake clients."""

from __future__ import annotations

import argparse
import io
import random
from collections import Counter
from typing import Any

import orjson
import pytest
from confluent_kafka import KafkaError

from agents.logic.aggregates import rebuild
from agents.logic.churn import ModelParams
from agents.logic.days import DAY_MS, Calendar
from agents.logic.engine import Engine
from agents.logic.fit import Summary, fit, simulate_mbgnbd, summaries_from_events
from agents.logic.meta import META_KEY
from agents.logic.state import encode
from schemas.records import Event, Signal
from schemas.timestamps import iso_ms
from streams.settings import Settings
from streams.tools.args import parse_time
from streams.tools.fit import add_fit_parser, fit_command, read_event_pairs, summaries_from_states
from streams.tools.retention import (
    add_retention_parser,
    render_html,
    render_text,
    retention_command,
    retention_triangle,
)
from streams.tools.signals import SignalConsumer, add_signals_parser, signals_command
from streams.topics import Topics
from streams.worker.changelog import ChangelogSnapshot, changelog_topic
from tests.unit.conftest import CHANNELS, T0, engine_config, make_event

CAL = Calendar("UTC")
DAY0 = CAL.day_of(T0)
SETTINGS = Settings().replace(channels=CHANNELS, clock="event")
N_DAYS = 20


def population(seed: int = 7) -> tuple[dict[str, tuple[str | None, set[int]]], list[Event]]:
    """user -> (channel, active day offsets), and the events that produce it."""
    rng = random.Random(seed)
    users: dict[str, tuple[str | None, set[int]]] = {}
    events = []
    for i in range(120):
        first = rng.randrange(N_DAYS)
        channel = rng.choice([*CHANNELS, "tiktok", None])
        days = {first} | {d for d in range(first + 1, N_DAYS) if rng.random() < 0.3}
        users[f"u{i}"] = (channel, days)
        for d in sorted(days):
            ms = T0 + d * DAY_MS + rng.randrange(DAY_MS)
            events.append(make_event(f"u{i}", ms, channel=channel if d == first else None))
    return users, events


@pytest.fixture(scope="module")
def built() -> tuple[dict[str, tuple[str | None, set[int]]], list[Event], Engine]:
    users, events = population()
    eng = Engine(engine_config(clock="event"))
    eng.assign(0, {})
    by_day: dict[int, list[Event]] = {}
    for event in events:
        by_day.setdefault(CAL.day_of(event.timestamp_ms) - DAY0, []).append(event)
    for d in range(N_DAYS):
        eng.process(0, by_day.get(d, []), 0, T0 + d * DAY_MS)
    eng.mark_durable(eng.take_changes())  # as the runtime does once Kafka has them
    return users, events, eng


def snapshot_of(eng: Engine) -> ChangelogSnapshot:
    snap = ChangelogSnapshot()
    for key, value in eng.partitions[0].store.items():
        snap.apply(0, key, value)
    return snap


def test_snapshot_keeps_latest_value_drops_tombstones_and_sets_meta_aside(built) -> None:
    _, _, eng = built
    snap = snapshot_of(eng)
    raw = snap.states[b"u1"]
    snap.apply(1, b"u1", b"\x09garbage")
    snap.apply(1, b"u1", raw)
    snap.apply(1, b"u2", None)
    snap.apply(1, META_KEY, orjson.dumps({"watermark_ms": 5}))
    users = dict(snap.users())
    assert "u2" not in users and encode(users["u1"]) == raw
    assert META_KEY.decode() not in users and len(users) == 119
    assert snap.meta[1] == {"watermark_ms": 5}
    assert CAL.day_of(snap.newest_watermark_ms()) == DAY0 + N_DAYS - 1
    snap.apply(1, b"bad", b"\x09garbage")
    assert len(dict(snap.users())) == 119 and snap.undecodable == 1


def expected_triangle(
    users: Any, today: int, n: int, channel: str | None = None
) -> Counter[tuple[int, int]]:
    cells: Counter[tuple[int, int]] = Counter()
    for ch, days in users.values():
        name = ch if ch in CHANNELS else "other"
        if channel is not None and name != channel:
            continue
        first = min(days) + DAY0
        for d in days:
            if 0 <= today - first < n and d + DAY0 <= today:
                cells[(first, d + DAY0 - first)] += 1
    return cells


@pytest.mark.parametrize("n", [1, 7, 14, 20])
def test_triangle_counts_what_the_users_did(built, n: int) -> None:
    users, _, eng = built
    states = (s for _, s in snapshot_of(eng).users())
    today = DAY0 + N_DAYS - 1
    tri = retention_triangle(rebuild(states, CAL), today, n, ("other", *CHANNELS))
    expected = expected_triangle(users, today, n)
    assert [r.cohort_day for r in tri.rows] == list(range(today - n + 1, today + 1))
    for row in tri.rows:
        assert row.size == expected[(row.cohort_day, 0)]
        for k, count in enumerate(row.counts):
            if row.cohort_day + k > today:
                assert count is None and row.percent(k) is None
            else:
                assert count is not None and count == expected[(row.cohort_day, k)]
                if row.size:
                    assert row.percent(k) == pytest.approx(100 * count / row.size)
        assert row.counts[0] == row.size


def test_triangle_by_channel_splits_the_cohorts(built) -> None:
    users, _, eng = built
    agg = rebuild((s for _, s in snapshot_of(eng).users()), CAL)
    today = DAY0 + N_DAYS - 1
    both = retention_triangle(agg, today, 14, ("other", *CHANNELS))
    split = retention_triangle(agg, today, 14, ("other", *CHANNELS), by_channel=True)
    assert {r.channel for r in split.rows} == {"other", *CHANNELS}
    for row in both.rows:
        parts = [r for r in split.rows if r.cohort_day == row.cohort_day]
        assert sum(r.size for r in parts) == row.size
        assert all(r.size > 0 for r in parts)
    for row in split.rows:
        expected = expected_triangle(users, today, 14, row.channel)
        assert row.size == expected[(row.cohort_day, 0)]


def test_text_table_is_aligned(built) -> None:
    _, _, eng = built
    agg = rebuild((s for _, s in snapshot_of(eng).users()), CAL)
    tri = retention_triangle(agg, DAY0 + 13, 14, ("other", *CHANNELS))
    text = render_text(tri, CAL)
    lines = text.splitlines()
    assert "2026-01-14" in lines[0]
    assert lines[1].split()[:4] == ["cohort", "users", "day", "0"]
    assert lines[2].startswith("2026-01-01") and "100.0%" in lines[2]
    ends = {len(line) for line in lines[1:3]}  # full rows have equal width
    assert len(ends) == 1
    assert len(lines) == 2 + 14
    assert lines[-1].split()[0] == "2026-01-14"  # today's cohort: only day 0
    assert len(lines[-1].split()) == 4


def test_html_is_self_contained_with_a_heatmap(built) -> None:
    _, _, eng = built
    agg = rebuild((s for _, s in snapshot_of(eng).users()), CAL)
    tri = retention_triangle(agg, DAY0 + 13, 14, ("other", *CHANNELS), by_channel=True)
    page = render_html(tri, CAL, title="Retention <test>")
    assert page.startswith("<!DOCTYPE html>") and "<style>" in page
    assert "Retention &lt;test&gt;" in page
    for forbidden in ("http://", "https://", "<script", "<link"):
        assert forbidden not in page
    assert page.count("<tr>") == 1 + len(tri.rows)
    assert "background: rgba(37, 99, 235, 1.000)" in page  # day 0 is 100%
    assert 'class="pending"' in page


def test_retention_command_uses_the_event_watermark(built, tmp_path) -> None:
    _, _, eng = built
    out = io.StringIO()
    html = tmp_path / "r.html"
    code = retention_command(
        SETTINGS, cohorts=7, html_path=str(html), out=out, loader=lambda s: snapshot_of(eng)
    )
    assert code == 0
    text = out.getvalue()
    assert "up to 2026-01-20" in text and f"wrote {html}" in text
    assert "<table>" in html.read_text()
    out = io.StringIO()
    retention_command(
        SETTINGS,
        cohorts=3,
        by_channel=True,
        now_ms=parse_time("2026-01-05"),
        out=out,
        loader=lambda s: snapshot_of(eng),
    )
    assert "up to 2026-01-05" in out.getvalue() and "channel" in out.getvalue()


def test_state_summaries_equal_event_summaries(built) -> None:
    _, events, eng = built
    now = T0 + 25 * DAY_MS
    from_states = summaries_from_states((s for _, s in sorted(snapshot_of(eng).users())), now, CAL)
    from_events = summaries_from_events(
        ((e.user_id, e.timestamp_ms) for e in events), now, CAL.day_of
    )
    assert sorted(from_states, key=repr) == sorted(from_events, key=repr)


def test_parse_time() -> None:
    assert parse_time("2026-01-01T00:00:00Z") == T0
    assert parse_time("2026-01-01T01:00:00+01:00") == T0
    assert parse_time(str(T0)) == T0
    assert parse_time("2026-01-01") == T0 + DAY_MS - 1
    assert parse_time("2026-01-01T00:00:00", "Europe/Paris") == T0 - 3_600_000
    with pytest.raises(ValueError):
        parse_time("yesterday")


# -- fit ------------------------------------------------------------------------------------------
def discretised(summary: Summary, rng: random.Random) -> tuple[int, int, int]:
    """(x, t_x, T) in whole days, with x <= t_x so x distinct repeat days fit."""
    T = int(summary.T)
    t_x = min(round(summary.t_x), T)
    x = min(summary.x, t_x)
    if x > 0 and t_x == 0:
        x = 0
    return x, t_x, T


def write_population(path, n_users: int, seed: int = 3) -> tuple[list[Summary], int]:
    """JSON lines of a simulated MBG/NBD population, observed until ``now``."""
    rng = random.Random(seed)
    params = ModelParams(0.8, 4.0, 0.3, 3.0)
    ages = [float(rng.randrange(10, 90)) for _ in range(n_users)]
    now = T0 + 101 * DAY_MS - 1  # the last ms of the day: that day's events all count
    today = CAL.day_of(now)
    expected: list[Summary] = []
    lines: list[dict[str, Any]] = []
    for i, summary in enumerate(simulate_mbgnbd(params, n_users, ages, seed)):
        x, t_x, T = discretised(summary, rng)
        first = today - T
        repeats = [*rng.sample(range(1, t_x), x - 1), t_x] if x else []
        for offset in [0, *repeats]:
            ms = CAL.start_of(first + offset) + rng.randrange(DAY_MS)
            stamp: object = iso_ms(ms) if rng.random() < 0.5 else ms
            lines.append({"event_id": f"e{len(lines)}", "user_id": f"u{i:04d}", "timestamp": stamp})
        expected.append(Summary(x, float(t_x), float(T)))
    rng.shuffle(lines)
    with open(path, "wb") as stream:
        for line in lines:
            stream.write(orjson.dumps(line) + b"\n")
        stream.write(b"{not json\n\n")
    return expected, now


def test_fit_from_an_events_file(tmp_path) -> None:
    events = tmp_path / "events.jsonl"
    expected, now = write_population(events, 400)
    errors: list[str] = []
    pairs = list(read_event_pairs(events, errors))
    assert len(errors) == 1 and errors[0].startswith("line ")
    assert summaries_from_events(pairs, now, CAL.day_of) == expected
    out, params_file = io.StringIO(), tmp_path / "params.json"
    code = fit_command(SETTINGS, events=str(events), now_ms=now, out_path=str(params_file), out=out)
    assert code == 0
    direct = fit(expected)
    loaded = ModelParams.load(params_file)
    for name in ("r", "alpha", "a", "b"):
        assert getattr(loaded, name) == pytest.approx(getattr(direct.params, name), rel=1e-9)
    doc = orjson.loads(params_file.read_bytes())
    assert doc["fit"]["n_users"] == 400
    assert doc["fit"]["now"] == iso_ms(now)
    assert doc["fit"]["log_likelihood"] == pytest.approx(direct.log_likelihood)
    text = out.getvalue()
    for label in ("r ", "alpha", "a ", "b ", "log-likelihood", "users          400"):
        assert label in text


def test_fit_defaults_now_to_the_newest_event(tmp_path) -> None:
    events = tmp_path / "events.jsonl"
    write_population(events, 60)
    out = io.StringIO()
    assert (
        fit_command(
            SETTINGS, events=str(events), now_ms=None, out_path=str(tmp_path / "p"), out=out
        )
        == 0
    )
    assert "60 users" in out.getvalue()


def test_fit_refuses_too_few_users(tmp_path, capsys) -> None:
    events = tmp_path / "events.jsonl"
    write_population(events, 20)
    code = fit_command(SETTINGS, events=str(events), now_ms=None, out_path=str(tmp_path / "p.json"))
    assert code == 1
    assert "only 20 users" in capsys.readouterr().err
    assert not (tmp_path / "p.json").exists()


def test_fit_from_state_reads_the_changelog(built, tmp_path) -> None:
    _, _, eng = built
    out = io.StringIO()
    code = fit_command(
        SETTINGS,
        events=None,
        now_ms=T0 + 25 * DAY_MS,
        out_path=str(tmp_path / "p.json"),
        out=out,
        loader=lambda s: snapshot_of(eng),
    )
    assert code == 0
    assert f"state:{changelog_topic(SETTINGS)}" in out.getvalue()
    assert orjson.loads((tmp_path / "p.json").read_bytes())["fit"]["n_users"] == 120


# -- command line ---------------------------------------------------------------------------------
def test_parsers_register_the_three_commands() -> None:
    parser = argparse.ArgumentParser(prog="engagement")
    sub = parser.add_subparsers(dest="command", required=True)
    add_signals_parser(sub)
    add_fit_parser(sub)
    add_retention_parser(sub)
    args = parser.parse_args(["signals", "--kind", "dormant", "--kind", "churned", "--follow"])
    assert (args.kind, args.follow, args.group) == (["dormant", "churned"], True, None)
    args = parser.parse_args(["fit", "--events", "e.jsonl", "--now", "2026-01-01"])
    assert (args.events, args.from_state, args.out) == ("e.jsonl", False, "engagement-params.json")
    args = parser.parse_args(["fit", "--from-state", "--out", "p.json"])
    assert args.from_state and args.events is None
    args = parser.parse_args(["retention", "--cohorts", "7", "--by-channel", "--html", "r.html"])
    assert (args.cohorts, args.by_channel, args.html) == (7, True, "r.html")
    assert all(callable(parser.parse_args(a).func) for a in (["signals"], ["retention"]))
    with pytest.raises(SystemExit):
        parser.parse_args(["fit"])
    with pytest.raises(SystemExit):
        parser.parse_args(["signals", "--kind", "bored"])


# -- signal consumer with a fake client ---------------------------------------------------------
class FakeMessage:
    def __init__(self, topic: str, partition: int, offset: int, value: bytes | None = None):
        self._t, self._p, self._o, self._v = topic, partition, offset, value
        self._e = None if value is not None else KafkaError(KafkaError._PARTITION_EOF)

    def error(self):
        return self._e

    def topic(self) -> str:
        return self._t

    def partition(self) -> int:
        return self._p

    def offset(self) -> int:
        return self._o

    def value(self) -> bytes | None:
        return self._v


class FakeConsumer:
    def __init__(self, config, records: dict[str, list[list[bytes]]]):
        self.config, self.committed, self.closed = config, False, False
        self.stored: list[int] = []
        self.records = records
        self.queue = [
            FakeMessage(t, p, o, v)
            for t, parts in records.items()
            for p, values in enumerate(parts)
            for o, v in enumerate(values)
        ]
        self.queue += [
            FakeMessage(t, p, len(v)) for t, parts in records.items() for p, v in enumerate(parts)
        ]

    def list_topics(self, topic, timeout):
        class Meta:
            def __init__(self, n: int) -> None:
                self.error, self.partitions = None, dict.fromkeys(range(n))

        return type(
            "M", (), {"topics": {t: Meta(len(p)) for t, p in self.records.items() if t == topic}}
        )

    def assign(self, partitions):
        self.assigned = partitions
        wanted = {(tp.topic, tp.partition) for tp in partitions}
        self.queue = [m for m in self.queue if (m.topic(), m.partition()) in wanted]

    def poll(self, timeout):
        return self.queue.pop(0) if self.queue else None

    def store_offsets(self, message):
        self.stored.append(message.offset())

    def commit(self, asynchronous):
        self.committed = True

    def close(self):
        self.closed = True


def fake_records() -> tuple[dict[str, list[list[bytes]]], list[dict[str, Any]]]:
    from tests.unit.test_signal_schema import scripted_signals

    sigs = scripted_signals("event")
    dormant = [orjson.dumps(s) for s in sigs if s["kind"] == "dormant"]
    churned = [orjson.dumps(s) for s in sigs if s["kind"] == "churned"]
    records = {
        Topics.of(SETTINGS).signals["dormant"]: [dormant[:2], [dormant[0], b"junk", *dormant[2:]]],
        Topics.of(SETTINGS).signals["churned"]: [churned],
    }
    return records, sigs


def test_signal_consumer_reads_to_the_end_and_dedupes() -> None:
    records, sigs = fake_records()
    made: list[FakeConsumer] = []

    def factory(config):
        made.append(FakeConsumer(config, records))
        return made[-1]

    with SignalConsumer(
        SETTINGS, ["dormant", "churned"], dedupe=True, consumer_factory=factory
    ) as c:
        got = list(c)
    fake = made[0]
    assert fake.config["enable.partition.eof"] is True and not fake.committed and fake.stored == []
    assert len(fake.assigned) == 3
    assert c.duplicates == 1 and c.undecodable == 1 and c.done and fake.closed
    want = [Signal.from_dict(s) for s in sigs if s["kind"] in ("dormant", "churned")]
    assert sorted(s.signal_id for s in got) == sorted(s.signal_id for s in want)


def test_named_group_commits_and_command_prints_json_lines() -> None:
    records, _ = fake_records()
    made: list[FakeConsumer] = []

    def factory(config):
        made.append(FakeConsumer(config, records))
        return made[-1]

    out = io.StringIO()
    assert (
        signals_command(SETTINGS, ["churned"], False, "analysts", out, consumer_factory=factory)
        == 0
    )
    fake = made[0]
    assert fake.config["group.id"] == "analysts" and fake.committed
    lines = out.getvalue().splitlines()
    assert len(lines) == len(records[Topics.of(SETTINGS).signals["churned"]][0])
    assert fake.stored == list(range(len(lines)))
    assert all(Signal.from_json(line).kind == "churned" for line in lines)
