"""The holdout arm on signals and the return counts by arm (agents.logic.holdout, .returns)."""

from __future__ import annotations

import dataclasses
import hashlib

from agents.logic.days import DAY_MS
from agents.logic.engine import Engine
from agents.logic.holdout import arm_of, holdout_draw
from agents.logic.returns import RETURNS_KEY, WINDOW_DAYS, decode_returns
from tests.unit.conftest import T0, engine_config, make_event

HOUR = 3_600_000


def test_the_draw_is_the_documented_sha256_and_the_share_holds() -> None:
    digest = hashlib.sha256(b"u-1\x1fdormant\x1fsalt").digest()
    assert holdout_draw("u-1", "dormant", "salt") == int.from_bytes(digest[:8], "big") / 2**64
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
    changes = engine.take_changes()
    store = {key: value for _, key, value in changes if value is not None}
    assert decode_returns(store[RETURNS_KEY]) == engine.partitions[0].returns
    again = Engine(engine.config)
    again.assign(0, store)
    assert again.snapshot(0)[0] == snap


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
