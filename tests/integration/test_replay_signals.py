"""A replay published at full speed by a foreign producer gives exactly the defined signals.

800 users over 70 days (about 13,500 events, 3 % duplicates, reordered only within the allowed
lateness) are published with kcat to an 8-partition input topic (librdkafka's own partitioner,
not ours), read by one worker and by two, on the event clock with the default thresholds. The
delivered dormant, churn_risk, churned and reactivated signals are compared with
:func:`tests.oracle.expected_signals`, computed from the raw events alone: nothing missing,
nothing extra. Apache Kafka only (kcat cannot talk to Tansu).
"""

from __future__ import annotations

import random
import shutil
import subprocess
import time

import orjson
import pytest

from schemas.records import Signal
from streams.settings import Settings
from streams.testbed.processes import WorkerProcess
from streams.tools.signals import SignalConsumer
from tests.integration.conftest import BrokerHandle, create_topics
from tests.integration.workers import (
    ingest_group_settled,
    running_worker,
    wait_for,
    wait_metric,
    worker_env,
)
from tests.oracle import DAY_MS, ExpectedSignal, RawEvent, SignalRules, expected_signals

pytestmark = pytest.mark.integration
KCAT = shutil.which("kcat") or "/usr/bin/kcat"
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
LATENESS_MS = 3_600_000
USERS, DAYS, PARTITIONS = 800, 70, 8


def replay_input(seed: int) -> tuple[list[RawEvent], list[RawEvent]]:
    """(distinct events, arrival order): users active on random days, 3 % duplicates, every
    event arriving within the lateness of its time."""
    rnd = random.Random(seed)
    events: list[RawEvent] = []
    for u in range(USERS):
        first = rnd.randrange(DAYS - 5)
        rate = rnd.choice([0.03, 0.1, 0.3, 0.7])
        for day in range(first, DAYS):
            if day == first or rnd.random() < rate:
                for k in range(rnd.randint(1, 2)):
                    ms = T0 + day * DAY_MS + rnd.randrange(DAY_MS)
                    events.append(RawEvent(f"user-{u}", f"e-{u}-{day}-{k}", ms, None))
    arriving = [*events, *rnd.sample(events, len(events) * 3 // 100)]
    keyed = sorted((e.timestamp_ms + rnd.randrange(LATENESS_MS), i) for i, e in enumerate(arriving))
    return events, [arriving[i] for _, i in keyed]


def kcat_publish(bootstrap: str, topic: str, events: list[RawEvent]) -> None:
    """One kcat process, every event a ``key<TAB>json`` line, as fast as librdkafka goes."""
    lines = b"".join(
        e.user_id.encode() + b"\t" + orjson.dumps(e.canonical()) + b"\n" for e in events
    )
    done = subprocess.run(
        [KCAT, "-b", bootstrap, "-P", "-t", topic, "-K", "\t", "-z", "lz4"],
        input=lines,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")


def compare(
    delivered: list[Signal], expected: list[ExpectedSignal]
) -> tuple[set[tuple[str, str, int | str]], set[tuple[str, str, int | str]]]:
    """(missing, extra): dormant, churned and reactivated by their ids (user, kind, trigger);
    churn_risk by its instant, within 1 ms (T* is computed in floating point on both sides)."""
    got = {(s.user_id, s.kind, s.signal_id) for s in delivered if s.kind != "churn_risk"}
    want = {(s.user_id, s.kind, s.signal_id) for s in expected if s.kind != "churn_risk"}
    missing: set[tuple[str, str, int | str]] = set(want - got)
    extra: set[tuple[str, str, int | str]] = set(got - want)
    risk_got = {(s.user_id, s.event_time_ms) for s in delivered if s.kind == "churn_risk"}
    risk_want = {(s.user_id, s.trigger_ms) for s in expected if s.kind == "churn_risk"}
    for user, at in risk_want:
        if not any((user, at + d) in risk_got for d in (-1, 0, 1)):
            missing.add((user, "churn_risk", at))
    for user, at in risk_got:
        if not any((user, at + d) in risk_want for d in (-1, 0, 1)):
            extra.add((user, "churn_risk", at))
    return missing, extra


def settled_watermark(workers: list[WorkerProcess], floor_ms: int) -> int:
    """The event clock once the input has gone idle: the same on every worker (each by_user
    partition takes the minimum over the ingest instances) and unchanged for 15 s, longer than
    the idle timeout. With several ingest instances it is the lowest instance's newest event
    minus the lateness, not the newest event of all."""
    seen: list[int] = []

    def settled() -> bool:
        marks = {
            round(w.metrics().get("engagement_watermark_timestamp_seconds", 0) * 1000)
            for w in workers
        }
        seen.append(marks.pop() if len(marks) == 1 else 0)
        recent = seen[-16:]
        return len(recent) == 16 and len(set(recent)) == 1 and recent[0] > floor_ms

    wait_for(settled, 150, "the watermark to settle", every=1.0)
    return seen[-1]


@pytest.mark.parametrize("workers", [1, 2])
def test_full_speed_replay_gives_exactly_the_defined_signals(
    kafka_broker: BrokerHandle, unique_name, workers: int
) -> None:
    name = unique_name(f"replay{workers}")
    env = worker_env(
        kafka_broker,
        name,
        ENGAGEMENT_CLOCK="event",
        ENGAGEMENT_PARTITIONS=str(PARTITIONS),
        ENGAGEMENT_IDLE_TIMEOUT="10s",
    )
    events, arriving = replay_input(seed=22 + workers)
    create_topics(kafka_broker.bootstrap, {env["ENGAGEMENT_INPUT_TOPIC"]: PARTITIONS})
    newest = max(e.timestamp_ms for e in events)
    envs = [env] + [  # the same app on another web port
        {**env, "ENGAGEMENT_WEB_PORT": worker_env(kafka_broker, name)["ENGAGEMENT_WEB_PORT"]}
        for _ in range(workers - 1)
    ]
    with running_worker(envs[0], "w0") as w0:
        running = [w0]
        second = running_worker(envs[1], "w1") if workers == 2 else None
        try:
            if second is not None:
                running.append(second.__enter__())
            wait_for(
                ingest_group_settled(kafka_broker.bootstrap, name, workers), 60, "ingest group"
            )
            kcat_publish(kafka_broker.bootstrap, env["ENGAGEMENT_INPUT_TOPIC"], arriving)
            wait_metric(running, "engagement_events_consumed_total", len(arriving), timeout=180)
            final_watermark = settled_watermark(running, newest - DAYS * DAY_MS)
            time.sleep(3)  # the last ticks' signals on their way
        finally:
            if second is not None:
                second.__exit__(None, None, None)
    assert final_watermark >= newest - LATENESS_MS - DAY_MS  # every input partition went idle
    oracle = expected_signals(events, SignalRules(lateness_ms=LATENESS_MS), final_watermark)
    with SignalConsumer(Settings.from_env(env), dedupe=False) as consumer:
        delivered = list(consumer)
    expected = oracle.signals
    missing, extra = compare(delivered, expected)
    kinds = {s.kind for s in delivered}
    print(
        f"{workers} worker(s): {len(arriving):,} published, {len(events):,} distinct, "
        f"{len(expected):,} signals expected, {len({s.signal_id for s in delivered}):,} "
        f"delivered distinct, {len(missing)} missing, {len(extra)} extra"
    )
    assert not missing, f"{len(missing)} missing: {sorted(missing)[:10]}"
    assert not extra, f"{len(extra)} extra: {sorted(extra)[:10]}"
    assert kinds == {"dormant", "churn_risk", "churned", "reactivated"}
