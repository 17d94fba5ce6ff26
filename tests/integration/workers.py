"""Starting real workers against the test brokers, and waiting on their metrics."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

import orjson
from confluent_kafka import Producer

from schemas.records import Signal
from streams.settings import Settings
from streams.testbed.brokers import free_port
from streams.testbed.processes import WorkerProcess
from streams.tools.signals import SignalConsumer
from tests.integration.conftest import BrokerHandle


def worker_env(broker: BrokerHandle, name: str, **overrides: str) -> dict[str, str]:
    """Settings for a worker of a test-unique app on ``broker`` (own topics and groups)."""
    env = {
        "ENGAGEMENT_BROKER": broker.url,
        "ENGAGEMENT_APP_ID": name,
        "ENGAGEMENT_TOPIC_PREFIX": name,
        "ENGAGEMENT_INPUT_TOPIC": f"{name}.user.events",
        "ENGAGEMENT_PARTITIONS": "4",
        "ENGAGEMENT_SESSION_TIMEOUT": "6s",
        "ENGAGEMENT_WEB_HOST": "127.0.0.1",
        "ENGAGEMENT_WEB_PORT": str(free_port()),
        "ENGAGEMENT_LOG_LEVEL": "info",
        "ENGAGEMENT_IDLE_TIMEOUT": "5s",  # event clock: the end of a test's input, sooner
        # oracles judge churn_risk under the configured parameters (test_model_refit.py: on)
        "ENGAGEMENT_MODEL_REFIT": "off",
    }
    env.update(overrides)
    Settings.from_env(env)  # fail early on a bad override
    return env


@contextmanager
def running_worker(env: Mapping[str, str], name: str = "worker") -> Iterator[WorkerProcess]:
    worker = WorkerProcess(env, name=name)
    try:
        worker.start()
        yield worker
    except BaseException:
        print(f"--- {name} log tail ---\n{worker.log_tail(80)}")
        raise
    finally:
        worker.stop()


def wait_for(
    check: Callable[[], bool], timeout: float = 60.0, what: str = "condition", every: float = 0.5
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def ingest_group_settled(bootstrap: str, app_id: str, members: int) -> Callable[[], bool]:
    """A check: the workers' ingest consumer group (``<app_id>-ingest``) is stable with
    ``members`` members, each holding input partitions. Publishing before that lets a worker
    read input that a joining one re-reads after the rebalance: at-least-once, but counted
    twice in ``engagement_events_consumed_total``."""
    from confluent_kafka import ConsumerGroupState
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})

    def check() -> bool:
        group = admin.describe_consumer_groups([f"{app_id}-ingest"])[f"{app_id}-ingest"]
        description = group.result(timeout=10)
        return (
            description.state == ConsumerGroupState.STABLE
            and len(description.members) == members
            and all(m.assignment.topic_partitions for m in description.members)
        )

    return check


def wait_metric(
    workers: list[WorkerProcess], name: str, expected: float, timeout: float = 60.0
) -> None:
    """Wait until ``name`` summed over ``workers`` equals ``expected``."""
    last: list[float] = []

    def check() -> bool:
        last[:] = [sum(w.metrics().get(name, 0.0) for w in workers)]
        return last[0] == expected

    try:
        wait_for(check, timeout, f"{name} == {expected}")
    except AssertionError as exc:
        raise AssertionError(f"{exc} (last value {last})") from None


def produce_events(
    bootstrap: str,
    topic: str,
    events: list[dict[str, object]],
    headers: list[tuple[str, str | bytes | None]] | None = None,
) -> None:
    producer = Producer(
        {"bootstrap.servers": bootstrap, "partitioner": "murmur2_random", "linger.ms": 5}
    )
    for event in events:
        user = event.get("user_id")
        producer.produce(
            topic,
            key=str(user).encode() if user else None,
            value=orjson.dumps(event),
            headers=headers,
        )
    assert producer.flush(30) == 0


def read_signals(settings: Settings) -> list[Signal]:
    """Every signal on the deployment's signal topics, duplicates included."""
    with SignalConsumer(settings, dedupe=False) as consumer:
        return list(consumer)
