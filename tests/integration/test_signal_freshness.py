"""Wall clock, on Apache Kafka: signals downstream can act on after an outage or a first start.

* A worker stopped while its users keep sending events for longer than the dormancy delay
  declares nobody dormant on restart whose newer event waited in the backlog (the input
  frontier, :mod:`agents.logic.frontier`).
* A first start on 60 days of history publishes no signal older than ENGAGEMENT_SIGNAL_MAX_AGE
  and counts the others in ``engagement_signals_suppressed_total``, as many as an independent
  count from the events says (:mod:`tests.oracle`).
Both assert against the published events, not against the engine.
"""

from __future__ import annotations

import time

import pytest

from streams.settings import Settings
from tests.integration.conftest import BrokerHandle
from tests.integration.workers import (
    produce_events,
    read_signals,
    running_worker,
    wait_for,
    wait_metric,
    worker_env,
)
from tests.oracle import DAY_MS, SignalRules, expected_signals, population

pytestmark = pytest.mark.integration
DORMANT_S = 20


def test_no_dormant_signal_for_a_user_whose_newer_event_waited_in_the_backlog(
    kafka_broker: BrokerHandle, unique_name, tmp_path
) -> None:
    name = unique_name("frontier")
    env = worker_env(
        kafka_broker,
        name,
        ENGAGEMENT_CLOCK="wall",
        ENGAGEMENT_STORE="rocksdict://",
        ENGAGEMENT_DORMANT_AFTER=f"{DORMANT_S}s",
        ENGAGEMENT_CHURNED_AFTER="10m",
        ENGAGEMENT_DISCARD_AFTER="1h",
        ENGAGEMENT_ALIVE_THRESHOLD="0.0001",
        ENGAGEMENT_DATA_DIR=str(tmp_path / "data"),
    )
    settings = Settings.from_env(env)
    users = [f"u{i}" for i in range(10)]
    sent: dict[str, list[int]] = {u: [] for u in users}

    def publish() -> None:
        now = int(time.time() * 1000)
        produce_events(
            kafka_broker.bootstrap,
            settings.input_topic,
            [
                {
                    "event_id": f"{u}-{now}",
                    "user_id": u,
                    "event_type": "page_view",
                    "timestamp": now,
                }
                for u in users
            ],
        )
        for u in users:
            sent[u].append(now)

    with running_worker(env, "first") as worker:
        publish()
        wait_metric([worker], "engagement_events_folded_total", len(users), timeout=30)
    # down for longer than the dormancy delay while the users keep coming back every 5 s
    for _ in range(7):
        time.sleep(5)
        publish()
    first_deadline = min(sent[u][0] for u in users) + DORMANT_S * 1000
    assert time.time() * 1000 > first_deadline, "the first deadline must pass during the outage"
    with running_worker(env, "second") as worker:
        wait_metric([worker], "engagement_events_folded_total", 7 * len(users), timeout=60)
        last_deadline = max(max(times) for times in sent.values()) + DORMANT_S * 1000

        def everyone_dormant_once_silent() -> bool:
            dormant = {s.user_id for s in read_signals(settings) if s.kind == "dormant"}
            return dormant >= set(users)

        wait_for(
            everyone_dormant_once_silent,
            last_deadline / 1000 - time.time() + 20,
            "the dormant signals after the last events",
            every=1.0,
        )
        lag = "engagement_input_frontier_lag_seconds"
        wait_for(lambda: worker.metrics().get(lag, 1e9) < 5, 10, f"{lag} < 5")

    for signal in read_signals(settings):
        if signal.kind != "dormant":
            continue
        times = sent[signal.user_id]
        trigger = signal.event_time_ms
        newer = [t for t in times if trigger - DORMANT_S * 1000 < t <= trigger]
        assert not newer, (
            f"{signal.user_id} declared dormant at {trigger} though it sent events at {newer}"
        )
        assert trigger - DORMANT_S * 1000 in times
        assert trigger == max(times) + DORMANT_S * 1000, (signal.user_id, trigger, times)


def test_a_first_start_on_60_days_of_history_publishes_no_stale_signal(
    kafka_broker: BrokerHandle, unique_name
) -> None:
    name = unique_name("maxage")
    env = worker_env(kafka_broker, name, ENGAGEMENT_CLOCK="wall")
    settings = Settings.from_env(env)
    max_age_ms = int(settings.signal_max_age * 1000)
    assert max_age_ms == 2 * DAY_MS  # the default
    start_ms = (int(time.time() * 1000) // DAY_MS - 60) * DAY_MS
    events = sorted(
        population(16, 300, 60, start_ms, settings.channels), key=lambda e: e.timestamp_ms
    )
    events = [e for e in events if e.timestamp_ms < time.time() * 1000 - 60_000]
    rules = SignalRules()  # deferral (issue 22): no user's signals depend on the batching
    produce_events(kafka_broker.bootstrap, settings.input_topic, [e.canonical() for e in events])
    started_ms = int(time.time() * 1000)
    # stale by the definitions however long the run takes: due before the start minus max age
    stale_by_start = [
        s for s in expected_signals(events, rules, started_ms).signals
        if s.at_ms < started_ms - max_age_ms
    ]  # fmt: skip

    def suppressed_total(metrics: dict[str, float]) -> float:
        return sum(
            value
            for key, value in metrics.items()
            if key.startswith("engagement_signals_suppressed_total{")
        )

    with running_worker(env, "first") as worker:
        wait_metric([worker], "engagement_events_folded_total", len(events), timeout=120)
        # events past a deadline wait until the clock (capped by the input frontier) passes it
        wait_for(
            lambda: suppressed_total(worker.metrics()) >= len(stale_by_start),
            60,
            f"{len(stale_by_start)} stale signals suppressed",
        )
        time.sleep(3)  # the last group is made durable on the next tick
        ended_ms = int(time.time() * 1000)
        metrics = worker.metrics()
    expected = expected_signals(events, rules, ended_ms)
    stale = [s for s in expected.signals if s.at_ms < started_ms - max_age_ms]
    fresh = [s for s in expected.signals if s.at_ms >= ended_ms - max_age_ms]
    assert len(stale) + len(fresh) == len(expected.signals), "a trigger fell due mid-test"
    suppressed = suppressed_total(metrics)
    delivered = {s.signal_id: s for s in read_signals(settings)}
    print(
        f"{len(events)} events: {len(expected.signals)} signals by definition, {len(stale)} "
        f"stale, {suppressed:.0f} suppressed, {len(delivered)} delivered"
    )
    assert suppressed == len(stale) > 0
    for signal in delivered.values():
        assert signal.processed_at_ms - signal.event_time_ms <= max_age_ms, signal
    assert set(delivered) == {s.signal_id for s in fresh}
