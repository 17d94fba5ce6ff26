"""Signals downstream can act on: the input frontier, the signal max age, persisted clocks."""

from __future__ import annotations

import dataclasses

import orjson

from agents.logic.days import DAY_MS
from agents.logic.engine import Engine
from agents.logic.freshness import frontier_lag_ms, frontier_now, is_stale
from agents.logic.frontier import InputFrontier, SourceFrontiers
from agents.logic.meta import META_KEY, META_VERSION, Meta, decode_meta, encode_meta
from agents.logic.watermarks import SourceWatermarks, source_id, superseded
from streams.worker.codecs import decode_batch, decode_record, encode_batch
from tests.unit.conftest import T0, engine_config, make_event

HOUR = 3_600_000


# -- the input frontier (ingest side) ---------------------------------------------------------
def test_input_frontier_is_the_least_read_partition_and_now_at_the_end() -> None:
    frontier = InputFrontier()
    assert frontier.value(1_000) == 0  # no assignment yet: vouches for nothing
    frontier.assign([])
    assert frontier.value(1_000) == 1_000  # assigned nothing: holds nothing back
    frontier.assign(["a", "b"])
    assert frontier.value(1_000) == 0  # nothing read yet
    frontier.read("a", 400)
    frontier.read("b", 700)
    frontier.read("b", 600)  # an older timestamp does not move it back
    assert frontier.value(1_000) == 400
    frontier.reached_end("a")
    assert frontier.value(1_000) == 700
    frontier.reached_end("b")
    assert frontier.value(1_000) == 1_000
    frontier.has_unread("b")  # its high watermark moved past our position
    assert frontier.value(1_000) == 700
    frontier.revoke(["b"])
    assert frontier.value(1_200) == 0  # a rebalance is under way
    frontier.assign([])
    assert frontier.value(1_200) == 1_200


def test_a_bulk_load_of_history_is_read_up_to_its_event_time_plus_the_lateness() -> None:
    frontier = InputFrontier(lateness_ms=HOUR)
    frontier.assign(["a"])
    frontier.read("a", T0 + 60 * DAY_MS, T0)  # published now, stamped 60 days ago
    assert frontier.value(T0 + 60 * DAY_MS) == T0 + HOUR
    frontier.read("a", T0 + 60 * DAY_MS, T0 + 60 * DAY_MS - 1_000)  # live: the record time
    assert frontier.value(T0 + 60 * DAY_MS) == T0 + 60 * DAY_MS


def test_source_frontiers_take_the_live_minimum_and_may_move_back() -> None:
    frontiers = SourceFrontiers(timeout_ms=100)
    assert frontiers.value(0) == 0
    frontiers.observe("x", 500, wall_ms=1_000)
    frontiers.observe("y", 300, wall_ms=1_000)
    assert frontiers.value(1_000) == 300
    frontiers.observe("y", 200, wall_ms=1_050)  # took over a backlog: deadlines wait again
    assert frontiers.value(1_050) == 200
    frontiers.observe("x", 900, wall_ms=1_200)  # y silent for longer than the timeout
    assert frontiers.value(1_200) == 900
    assert frontiers.value(5_000) == 900  # all silent: keep what we knew, not wall time
    assert frontier_now(frontiers, 5_000) == 900
    assert frontier_now(frontiers, 800) == 800
    assert frontier_now(None, 5_000) == 0  # nothing heard: nothing fires
    assert frontier_lag_ms([None, frontiers], 5_000) == 4_100


def test_a_newer_generation_of_the_same_ingest_instance_supersedes_its_older_ones() -> None:
    """At start the ingest broadcasts under generation 0, reading nothing (frontier 0); once
    assigned it writes under generation 1. Generation 0 must not hold the deadlines until it
    times out (measured: every dormancy deadline 25-35 s late after a worker start)."""
    frontiers = SourceFrontiers(timeout_ms=30_000)
    frontiers.observe(source_id("i1.0", 0, []), 0, wall_ms=1_000)
    frontiers.observe(source_id("i2.3", 2, [1]), 800, wall_ms=1_000)  # another instance
    frontiers.observe(source_id("i1.1", 2, [0]), 900, wall_ms=1_100)
    assert sorted(frontiers.to_wire()) == ["i1.1:2:1", "i2.3:2:2"]
    assert frontiers.value(1_100) == 800
    # another instance is never superseded (it may be alive and behind): it times out
    frontiers.observe(source_id("i2.4", 2, [1]), 700, wall_ms=1_200)
    frontiers.observe(source_id("i3.1", 2, [0, 1]), 2_000, wall_ms=1_300)
    assert sorted(frontiers.to_wire()) == ["i1.1:2:1", "i2.4:2:2", "i3.1:2:3"]
    assert frontiers.value(1_300) == 700
    # an older generation heard after a newer one (never in order; from a stored meta) stays
    frontiers.observe(source_id("i3.0", 2, []), 0, wall_ms=1_400)
    assert "i3.0:2:0" in frontiers.to_wire()
    assert superseded(["a:1:1", "b.x:1:1", "c.2:1:1"], "c.3:1:1") == ["c.2:1:1"]
    assert superseded(["c.2:1:1"], "c:1:1") == []  # a source without a generation


# -- the batch field ---------------------------------------------------------------------------
def test_batches_carry_the_frontier_and_older_readers_ignore_it() -> None:
    rows = [make_event("u", T0)]
    value = encode_batch(5, rows, "src", 1234)
    assert decode_record(value)[3] == 1234
    assert decode_batch(value)[:2] == (5, "src")
    assert decode_record(encode_batch(5, rows, "src"))[3] is None
    assert orjson.loads(value)["v"] == 2


# -- the wall clock waits for the frontier -----------------------------------------------------
def wall_engine(**changes: object) -> Engine:
    config = dataclasses.replace(engine_config("wall"), frontier=True, **changes)  # type: ignore[arg-type]
    engine = Engine(config)
    engine.assign(0, {})
    return engine


def test_no_deadline_fires_past_the_input_frontier() -> None:
    engine = wall_engine()
    engine.observe_frontier(0, "ingest", T0, T0)
    engine.process(0, [make_event("u", T0)], wall_ms=T0)
    later = T0 + 8 * DAY_MS  # past u's dormancy deadline in wall time
    assert engine.tick(later).signals == []  # the frontier (T0) says input up to T0 was read
    engine.observe_frontier(0, "ingest", later - DAY_MS, later)  # backlog read up to day 7
    out = engine.process(0, [make_event("u", T0 + 6 * DAY_MS)], wall_ms=later)
    assert [kind for kind, _, _ in out.signals] == []  # the newer event moved the deadline
    engine.observe_frontier(0, "ingest", later + 7 * DAY_MS, later + 7 * DAY_MS)
    out = engine.tick(later + 7 * DAY_MS)
    assert [s["kind"] for _, _, s in out.signals] == ["dormant"]
    assert out.signals[0][2]["event_time_ms"] == T0 + 13 * DAY_MS


def test_without_a_frontier_a_gated_partition_fires_nothing_and_ungated_fires_on_wall() -> None:
    gated, ungated = wall_engine(), Engine(engine_config("wall"))
    ungated.assign(0, {})
    for engine in (gated, ungated):
        engine.process(0, [make_event("u", T0)], wall_ms=T0)
    assert gated.tick(T0 + 8 * DAY_MS).signals == []
    assert [s["kind"] for _, _, s in ungated.tick(T0 + 8 * DAY_MS).signals] == ["dormant"]


# -- the signal max age ------------------------------------------------------------------------
def test_is_stale() -> None:
    assert not is_stale(T0, T0 + 2 * DAY_MS, 2 * DAY_MS)
    assert is_stale(T0, T0 + 2 * DAY_MS + 1, 2 * DAY_MS)
    assert not is_stale(T0, T0 + 400 * DAY_MS, 0)  # 0: off


def test_stale_signals_are_counted_not_delivered_and_state_advances_the_same() -> None:
    suppressing = Engine(dataclasses.replace(engine_config("wall"), signal_max_age_ms=2 * DAY_MS))
    publishing = Engine(engine_config("wall"))
    now = T0 + 60 * DAY_MS
    outs = []
    for engine in (suppressing, publishing):
        engine.assign(0, {})
        out = engine.process(0, [make_event("old", T0), make_event("new", now - 8 * DAY_MS)], now)
        assert engine.tick(now).signals == []
        outs.append(out)
    kept, published = outs
    assert sorted(s["kind"] for _, _, s in published.signals) == ["churned", "dormant", "dormant"]
    assert [(s["user_id"], s["kind"]) for _, _, s in kept.signals] == [("new", "dormant")]
    assert kept.suppressed == {"dormant": 1, "churned": 1}
    old_kept, old_published = suppressing.user("old"), publishing.user("old")
    assert old_kept is not None and old_published is not None
    # the same facts and stage; only the marks differ: a suppressed signal counts in no
    # return rate (agents.logic.returns.NOT_DELIVERED)
    assert [m[1] for m in old_kept.marks] == [2, 2]
    assert dataclasses.replace(old_kept, marks=[]) == dataclasses.replace(old_published, marks=[])
    kept_changes = {k: v for _, k, v in suppressing.take_changes()}
    published_changes = {k: v for _, k, v in publishing.take_changes()}
    assert kept_changes[b"new"] == published_changes[b"new"]


def test_event_clock_max_age_is_measured_from_the_watermark() -> None:
    engine = Engine(dataclasses.replace(engine_config("event"), signal_max_age_ms=2 * DAY_MS))
    engine.assign(0, {})
    engine.process(0, [make_event("u", T0)], wall_ms=T0 + 400 * DAY_MS)
    for day in range(1, 10):  # a replay: the watermark passes the deadline gradually
        out = engine.process(0, [make_event("clock", T0 + day * DAY_MS)], T0 + 400 * DAY_MS)
        if out.signals:
            break
    assert [s["kind"] for _, _, s in out.signals] == ["dormant"] and out.suppressed == {}


# -- persisted source clocks -------------------------------------------------------------------
def test_meta_keeps_sources_and_frontiers_and_reads_version_1() -> None:
    meta = Meta(5, 6, [1, 0], [2, 0])
    meta.sources = SourceWatermarks(30_000, 5)
    meta.sources.observe("a", 10, 100)
    meta.sources.observe("b", 7, 200)
    meta.frontiers = SourceFrontiers(30_000)
    meta.frontiers.observe("a", 900, 100)
    raw = encode_meta(meta)
    assert orjson.loads(raw)["v"] == META_VERSION == 2
    back = decode_meta(raw, 2)
    assert back.sources is not None and back.frontiers is not None
    assert back.sources.to_wire() == {"a": [10, 100], "b": [7, 200]}
    assert back.sources.value == 5
    assert back.frontiers.to_wire() == {"a": [900, 100]}
    old = decode_meta(b'{"watermark_ms": 5, "today": 6, "lapsed": [1], "reactivated": [2]}', 2)
    assert old == Meta(5, 6, [1, 0], [2, 0])


def test_a_taken_over_partition_continues_from_its_source_watermarks() -> None:
    engine = Engine(engine_config("event"))
    store: dict[bytes, bytes] = {}
    engine.assign(0, store)
    engine.process(0, [make_event("u", T0)], T0, watermark_ms=T0, source="fast")
    engine.process(0, [], T0 + 1_000, watermark_ms=T0 - HOUR, source="slow")
    engine.mark_durable(engine.take_changes())
    assert META_KEY in store
    successor = Engine(engine_config("event"))  # a restart, or another worker taking over
    successor.assign(0, store)
    successor.process(0, [], T0 + 2_000, watermark_ms=T0 + 5 * HOUR, source="fast")
    # still waits for "slow" (starting afresh, "fast" alone would have moved it 5 hours on)
    assert successor.partitions[0].meta.watermark_ms == T0


def test_event_clock_max_age_ignores_a_watermark_jump_within_one_batch() -> None:
    engine = Engine(dataclasses.replace(engine_config("event"), signal_max_age_ms=2 * DAY_MS))
    engine.assign(0, {})
    engine.process(0, [make_event("u", T0)], wall_ms=T0)  # the first batch: no clock before
    out = engine.process(0, [make_event("clock", T0 + 40 * DAY_MS)], wall_ms=T0)
    assert [s["kind"] for _, _, s in out.signals] == ["dormant", "churned"]
    late = engine.process(0, [make_event("u", T0 + 35 * DAY_MS)], wall_ms=T0)
    assert late.signals == [] and late.suppressed == {"reactivated": 1}  # 5 days late
