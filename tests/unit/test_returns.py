"""The holdout arm on signals and the return counts by arm (agents.logic.holdout, .returns)."""

from __future__ import annotations

import dataclasses
import hashlib

import orjson
import pytest

from agents.logic.days import DAY_MS
from agents.logic.engine import Engine
from agents.logic.holdout import arm_of, holdout_draw
from agents.logic.returns import (
    COUNTS_PREFIX,
    RETURNS_KEY,
    WINDOW_DAYS,
    ReturnCounts,
    count_key,
)
from schemas.errors import StateDecodeError
from tests.unit.conftest import T0, engine_config, make_event

HOUR = 3_600_000


def test_the_draw_is_the_documented_sha256_and_the_share_holds() -> None:
    for i in range(5_000):  # the documented division, to the bit
        digest = hashlib.sha256(f"u-{i}\x1fdormant\x1fsalt".encode()).digest()
        assert (
            holdout_draw(f"u-{i}", "dormant", "salt") == int.from_bytes(digest[:8], "big") / 2**64
        )
    arms = [arm_of(f"u{i}", "dormant", "s", 0.1) for i in range(20_000)]
    assert 0.09 < sum(arms) / len(arms) < 0.11
    assert all(arm_of(f"u{i}", "dormant", "s", 0.0) == 0 for i in range(1000))
    assert arms == [arm_of(f"u{i}", "dormant", "s", 0.1) for i in range(20_000)]  # stable


def holdout_engine(share: float = 0.5) -> Engine:
    config = dataclasses.replace(engine_config(), holdout_share=share, holdout_salt="t")
    engine = Engine(config)
    engine.assign(0, {})
    return engine


def gauges(engine: Engine, kind: int = 0) -> tuple[dict[int, int], dict[int, int], int]:
    snap, _ = engine.snapshot(0)
    eligible = {
        w: sum(
            n for k, v in snap.return_eligible.items() if k[0] == kind and k[3] == w for n in [v]
        )
        for w in range(3)
    }
    returned = {
        w: sum(v for k, v in snap.return_returned.items() if k[0] == kind and k[3] == w)
        for w in range(3)
    }
    return eligible, returned, sum(v for k, v in snap.return_signalled.items() if k[0] == kind)


def test_a_dormant_user_who_returns_counts_in_its_arm_once_windows_close() -> None:
    engine = holdout_engine()
    out = engine.process(0, [make_event("a", T0 + 10 * HOUR)], 0)
    back = T0 + 10 * HOUR + 7 * DAY_MS + 3 * DAY_MS  # 3 days after the dormant signal
    out = engine.process(0, [make_event("a", back)], 0)
    signals = {s["kind"]: s for _, _, s in out.signals}
    dormant = signals["dormant"]
    assert dormant["arm"] == ("holdout" if arm_of("a", "dormant", "t", 0.5) else "treatment")
    assert signals["reactivated"]["arm"] in ("treatment", "holdout")
    # the clock is on day 10, the signal on day 7: only its 1-day window has closed
    eligible, returned, signalled = gauges(engine)
    assert signalled == 1 and eligible == {0: 1, 1: 0, 2: 0} and returned == {0: 0, 1: 0, 2: 0}
    engine.process(0, [make_event("b", T0 + 60 * DAY_MS)], 0)  # the clock moves on
    eligible, returned, _ = gauges(engine)  # dormant again 7 days after the return: 2 signals
    assert eligible == {0: 2, 1: 2, 2: 2} and returned == {0: 0, 1: 1, 2: 1}
    snap, _ = engine.snapshot(0)
    assert sum(snap.return_buckets.values()) == 1  # only the first dormant signal's return
    # the counts travel with the states: a takeover reads them back
    store = stored(engine)
    assert RETURNS_KEY not in store and any(k.startswith(COUNTS_PREFIX) for k in store)
    again = Engine(engine.config)
    again.assign(0, store)
    assert again.partitions[0].returns == engine.partitions[0].returns
    assert again.snapshot(0)[0] == snap


def stored(engine: Engine, store: dict[bytes, bytes] | None = None) -> dict[bytes, bytes]:
    """Partition 0's store once the engine's changes so far are in it."""
    store = {} if store is None else store
    for _, key, value in engine.take_changes():
        if value is None:
            store.pop(key, None)
        else:
            store[key] = value
    return store


def counter_records(engine: Engine) -> list[tuple[bytes, bytes | None]]:
    return [(k, v) for _, k, v in engine.take_changes() if k.startswith(RETURNS_KEY)]


def test_a_group_carries_the_counters_it_changed_and_nothing_else() -> None:
    engine = holdout_engine()
    for i in range(30):  # 30 users a day apart: a month of signals and returns
        engine.process(0, [make_event(f"u{i % 12}", T0 + i * DAY_MS + i * HOUR)], 0)
    before = counter_records(engine)
    assert len(before) > 10 and RETURNS_KEY not in dict(before)
    counts = engine.partitions[0].returns
    then = [dict(table) for table in counts.tables()]
    engine.process(0, [make_event("u3", T0 + 30 * DAY_MS + 5 * HOUR)], 0)  # a day on
    records = counter_records(engine)
    changed = {
        count_key(i, key)
        for i, (old, new) in enumerate(zip(then, counts.tables(), strict=True))
        for key in old.keys() | new.keys()
        if old.get(key, 0) != new.get(key, 0)
    }
    assert changed and {key for key, _ in records} == changed
    assert len(records) < sum(1 for table in counts.tables() for n in table.values() if n)
    assert all(value is None or int(value) != 0 for _, value in records)
    assert counter_records(engine) == []  # nothing changed since


def test_settled_days_delete_their_records_and_the_store_adds_up() -> None:
    engine = holdout_engine(0.0)
    store: dict[bytes, bytes] = {}
    for i in range(5):
        engine.process(0, [make_event(f"u{i}", T0 + i * DAY_MS)], 0)
        stored(engine, store)
    engine.process(0, [make_event("z", T0 + 200 * DAY_MS)], 0)
    records = [(k, v) for _, k, v in engine.take_changes() if k.startswith(COUNTS_PREFIX)]
    assert any(v is None for _, v in records), "the days that settled are deleted"
    for key, value in records:
        if value is None:
            store.pop(key, None)
        else:
            store[key] = value
    again = Engine(engine.config)
    again.assign(0, store)
    assert again.partitions[0].returns == engine.partitions[0].returns
    assert {key[3] for key, n in again.partitions[0].returns.signalled.items() if n} == {0}


def legacy_record(counts: ReturnCounts) -> bytes:
    """The single record earlier releases wrote (their encode_returns)."""
    return orjson.dumps(
        {
            "v": 1,
            "s": [[*k, n] for k, n in counts.signalled.items() if n],
            "r": [[*k, n] for k, n in counts.returned.items() if n],
            "b": [[*k, n] for k, n in counts.buckets.items() if n],
            "ms": [[*k, n] for k, n in counts.sum_ms.items() if n],
        }
    )


@pytest.mark.parametrize("cut_short", [False, True], ids=["old store", "replacement cut short"])
def test_an_earlier_release_single_record_is_read_then_replaced(cut_short: bool) -> None:
    engine = holdout_engine()
    engine.process(0, [make_event("a", T0 + 10 * HOUR)], 0)
    engine.process(0, [make_event("a", T0 + 10 * HOUR + 10 * DAY_MS)], 0)
    new_store = stored(engine)
    counts = engine.partitions[0].returns
    old_store = {k: v for k, v in new_store.items() if not k.startswith(COUNTS_PREFIX)}
    old_store[RETURNS_KEY] = legacy_record(counts)
    if cut_short:  # a replacement that wrote some counters, one of them not in the old record
        old_store[COUNTS_PREFIX + b"s1,0,0,99"] = b"5"
    again = Engine(engine.config)
    again.assign(0, old_store)
    assert again.partitions[0].returns == counts
    again.process(0, [make_event("b", T0 + 11 * DAY_MS)], 0)  # any change to the partition
    records = [(k, v) for _, k, v in again.take_changes() if k.startswith(RETURNS_KEY)]
    assert records[-1] == (RETURNS_KEY, None)  # deleted after every counter is written
    after = {k: v for k, v in old_store.items() if k != RETURNS_KEY}
    for key, value in records:
        if value is None:
            after.pop(key, None)
        else:
            after[key] = value
    assert (COUNTS_PREFIX + b"s1,0,0,99") not in after
    third = Engine(engine.config)
    third.assign(0, after)
    assert third.partitions[0].returns == again.partitions[0].returns


@pytest.mark.parametrize(
    ("key", "value"),
    [
        (COUNTS_PREFIX + b"s0,1,0", b"1"),  # a key of three numbers in a table of four
        (COUNTS_PREFIX + b"x0,1", b"1"),  # no such table
        (COUNTS_PREFIX + b"s0,1,0,7", b"many"),
        (COUNTS_PREFIX, b"1"),
    ],
)
def test_a_foreign_counter_record_is_refused_naming_it(key: bytes, value: bytes) -> None:
    engine = holdout_engine()
    with pytest.raises(StateDecodeError, match="corrupt return count") as caught:
        engine.assign(1, {key: value})
    assert (caught.value.key, caught.value.partition) == (key, 1)


def test_a_late_event_moves_the_return_earlier() -> None:
    engine = holdout_engine()
    engine.process(0, [make_event("a", T0 + 10 * HOUR)], 0)
    signal = T0 + 10 * HOUR + 7 * DAY_MS
    engine.process(0, [make_event("a", signal + 10 * DAY_MS)], 0)  # back after 10 days
    engine.process(0, [make_event("a", signal + 5 * DAY_MS)], 0)  # late: back after 5 days
    engine.process(0, [make_event("b", T0 + 80 * DAY_MS)], 0)
    eligible, returned, _ = gauges(engine)  # dormant again 7 days after the return: 2 signals
    assert eligible == {0: 2, 1: 2, 2: 2} and returned == {0: 0, 1: 1, 2: 1}
    snap, _ = engine.snapshot(0)
    assert sum(v for (kind, _), v in snap.return_sum_ms.items() if kind == 0) == 5 * DAY_MS


def test_old_signal_days_settle_into_one_total() -> None:
    engine = holdout_engine(0.0)
    for i in range(5):
        engine.process(0, [make_event(f"u{i}", T0 + i * DAY_MS)], 0)
    engine.process(0, [make_event("z", T0 + 200 * DAY_MS)], 0)
    counts = engine.partitions[0].returns
    assert {key[3] for key in counts.signalled} == {0}  # every day settled
    eligible, _, signalled = gauges(engine)
    assert signalled == 5 and eligible == dict.fromkeys(range(len(WINDOW_DAYS)), 5)


def test_the_oracle_recomputes_the_same_arms() -> None:
    from tests.oracle import holdout_arm

    for i in range(2_000):
        for kind in ("dormant", "churned"):
            arm = arm_of(f"user-{i}", kind, "pepper", 0.25)
            assert holdout_arm(f"user-{i}", kind, "pepper", 0.25) == ("treatment", "holdout")[arm]
