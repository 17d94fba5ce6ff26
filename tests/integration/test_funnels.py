"""Activation funnels on Apache Kafka: the funnel gauges and the stalled signals are exactly the
independent oracle's (``tests/funnel_oracle.py``), on one worker and on two.

Four hundred users enter an onboarding funnel over two weeks, each channel dropping off at a
different step; events are duplicated (3 %) and arrive reordered within the allowed lateness
(some of them after newer events of their user, i.e. late but not older than the watermark).
The event clock is closed past every funnel window, so every stall is due: the signal topic
must hold exactly the oracle's stalled signals (same ids), and the gauges summed over the
workers exactly the oracle's step counts per channel and cohort week. A second funnel has a
step with a property match (a purchase of the pro plan), which the ingest stage matches and
the ``events.by_user`` hop carries to the fold.
"""

from __future__ import annotations

import random
import re
import time

import orjson
import pytest
from confluent_kafka import Producer

from streams.settings import Settings
from streams.testbed.processes import WorkerProcess
from streams.tools.signals import SignalConsumer
from tests.funnel_oracle import FunnelSpec, Hit, expected_counts, expected_stalls
from tests.integration.conftest import BrokerHandle, create_topics
from tests.integration.test_replay_signals import settled_watermark
from tests.integration.workers import ingest_group_settled, running_worker, wait_for, worker_env

pytestmark = pytest.mark.integration
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
HOUR, DAY = 3_600_000, 86_400_000
LATENESS_MS = HOUR
USERS, PARTITIONS = 400, 4
END_MS = T0 + 25 * DAY  # past every window: entries end on day 14, windows last 3 days
STEPS = ("session_start", "add_to_cart", "purchase")
SPECS = [
    FunnelSpec("onboarding", STEPS, 3 * DAY),
    FunnelSpec("pro", ("session_start", ("purchase", {"plan": "pro"})), 3 * DAY),
]
FUNNELS = '[{"name": "onboarding", "steps": ["session_start", "add_to_cart", "purchase"], '
FUNNELS += '"window": "3d"}, {"name": "pro", "steps": ["session_start", '
FUNNELS += '{"event_type": "purchase", "match": {"plan": "pro"}}], "window": "3d"}]'
# channel -> chance of going on from step 1 to 2, and from 2 to 3
GO_ON = {"organic": (0.8, 0.6), "paid_search": (0.5, 0.5), "paid_social": (0.7, 0.2)}
SAMPLE = re.compile(r"^engagement_funnel_reached_users\{(.*)\}$")


def population(rnd: random.Random) -> tuple[list[Hit], dict[str, str]]:
    events: list[Hit] = []
    channel_of: dict[str, str] = {}
    for u in range(USERS):
        user, channel = f"user-{u}", rnd.choice(sorted(GO_ON))
        channel_of[user] = channel
        ms = T0 + rnd.randrange(14 * DAY)
        path = ["session_start"]
        for chance, step in zip(GO_ON[channel], STEPS[1:], strict=True):
            if rnd.random() >= chance:
                break
            path.append(step)
        for i, kind in enumerate(path + ["page_view"] * rnd.randint(0, 3)):
            plan = {"plan": rnd.choice(("pro", "free"))} if kind == "purchase" else None
            events.append(Hit(user, f"{user}-{i}", kind, ms, plan))
            ms += rnd.randrange(HOUR // 2, 2 * DAY)  # some go on after the window
    return events, channel_of


def publish(bootstrap: str, topic: str, stream: list[Hit], channel_of: dict[str, str]) -> None:
    producer = Producer(
        {"bootstrap.servers": bootstrap, "partitioner": "murmur2_random", "linger.ms": 20}
    )
    for e in stream:
        value: dict[str, object] = {"event_id": e.event_id, "user_id": e.user_id}
        value |= {"event_type": e.event_type, "timestamp": e.ms, "channel": channel_of[e.user_id]}
        if e.properties is not None:
            value["properties"] = e.properties
        producer.produce(topic, key=e.user_id.encode(), value=orjson.dumps(value))
        producer.poll(0)
    for p in range(PARTITIONS):  # close the replay: every input partition reaches the end
        clock: dict[str, object] = {"event_id": f"clock-{p}", "user_id": "clock"}
        clock |= {"event_type": "page_view"}
        producer.produce(
            topic, partition=p, key=b"clock", value=orjson.dumps(clock | {"timestamp": END_MS})
        )
    assert producer.flush(60) == 0


def gauges(workers: list[WorkerProcess]) -> dict[tuple[str, int, str, str], int]:
    """engagement_funnel_reached_users summed over the workers, by (funnel, step, channel,
    cohort)."""
    total: dict[tuple[str, int, str, str], int] = {}
    for worker in workers:
        for name, value in worker.metrics().items():
            match = SAMPLE.match(name)
            if match is None:
                continue
            labels = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1)))
            key = (labels["funnel"], int(labels["step"]), labels["channel"], labels["cohort"])
            total[key] = total.get(key, 0) + round(value)
    return {k: v for k, v in total.items() if v}


def settled_gauges(
    workers: list[WorkerProcess], want: dict[tuple[str, int, str, str], int], timeout: float = 60
) -> dict[tuple[str, int, str, str], int]:
    """The summed gauges once they equal ``want`` (the snapshot is refreshed on a timer), or
    the last ones seen when ``timeout`` runs out."""
    deadline = time.monotonic() + timeout
    while True:
        got = gauges(workers)
        if got == want or time.monotonic() > deadline:
            return got
        time.sleep(2.0)


@pytest.mark.parametrize("workers", [1, 2])
def test_funnel_gauges_and_stalled_signals_equal_the_oracle(
    kafka_broker: BrokerHandle, unique_name, workers: int
) -> None:
    name = unique_name(f"funnel{workers}")
    env = worker_env(
        kafka_broker,
        name,
        ENGAGEMENT_CLOCK="event",
        ENGAGEMENT_PARTITIONS=str(PARTITIONS),
        ENGAGEMENT_CHANNELS=",".join(sorted(GO_ON)),
        ENGAGEMENT_FUNNELS=FUNNELS,
        ENGAGEMENT_ALLOWED_LATENESS="1h",
        ENGAGEMENT_IDLE_TIMEOUT="10s",
    )
    rnd = random.Random(19 + workers)
    events, channel_of = population(rnd)
    arriving = [*events, *rnd.sample(events, len(events) * 3 // 100)]
    order = sorted((e.ms + rnd.randrange(LATENESS_MS), i) for i, e in enumerate(arriving))
    create_topics(kafka_broker.bootstrap, {env["ENGAGEMENT_INPUT_TOPIC"]: PARTITIONS})
    envs = [env] + [
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
            stream = [arriving[i] for _, i in order]
            publish(kafka_broker.bootstrap, env["ENGAGEMENT_INPUT_TOPIC"], stream, channel_of)
            watermark = settled_watermark(running, END_MS - 2 * DAY)
            want = expected_counts(events, SPECS, channel_of)
            assert settled_gauges(running, want) == want
            assert len({cohort for _, _, _, cohort in want}) >= 2
            assert any(funnel == "pro" and step == 2 for funnel, step, _, _ in want)
        finally:
            if second is not None:
                second.__exit__(None, None, None)
    assert watermark >= END_MS - LATENESS_MS - DAY  # every window has ended
    expected = expected_stalls(events, SPECS, watermark)
    with SignalConsumer(Settings.from_env(env), ["stalled"], dedupe=False) as consumer:
        delivered = list(consumer)
    got = {(s.user_id, s.signal_id, s.reasons["funnel"]["step_reached"]) for s in delivered}
    assert any(s.reasons["funnel"]["name"] == "pro" for s in delivered)
    print(
        f"{workers} worker(s): {len(stream):,} published, {len(events):,} distinct, "
        f"{len(expected)} stalls expected, {len(delivered)} delivered ({len(got)} distinct)"
    )
    assert got == {(x.user_id, x.signal_id, x.step_reached) for x in expected}
    onboarding = [x for x in expected if x.funnel == "onboarding"]
    by_step = {k: sum(1 for x in onboarding if x.step_reached == k) for k in (1, 2)}
    assert by_step[1] > 0 and by_step[2] > 0, by_step
