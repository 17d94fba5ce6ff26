"""The benchmark's input: simulated events produced once into a topic, and quick events.

The data set comes from the population simulator (:mod:`streams.tools.simulate`): canonical events
in event-time order, keyed by user id, cut at the requested number of events. Users arrive over
the first days so that almost all of them appear before the cut.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from schemas.errors import BrokerError
from streams.tools.simulate import SimulationConfig, simulate

EVENTS_PER_USER_DAY = 0.3  # roughly, for the default population: to pick the days simulated


def say(message: str) -> None:
    """A progress line on stderr."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def producer(bootstrap: str, **overrides: Any) -> Producer:
    """Keyed like Kafka's Java client (murmur2), as ``streams.kafka.producer_config``."""
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "partitioner": "murmur2_random",
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 20,
        "batch.num.messages": 10_000,
        "queue.buffering.max.messages": 1_000_000,
        "compression.type": "lz4",
        **overrides,
    }
    return Producer(config)


def consumer(bootstrap: str, group: str, topics: list[str], **overrides: Any) -> Consumer:
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        **overrides,
    }
    client = Consumer(config)
    client.subscribe(topics)
    return client


def create_topics(bootstrap: str, names: list[str], partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(name, partitions, 1) for name in names])
    for name, future in futures.items():
        try:
            future.result(30)
        except Exception as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise BrokerError(f"could not create topic {name}: {exc}") from exc


@dataclass(frozen=True, slots=True)
class Dataset:
    topic: str
    events: int
    users: int
    days: int
    seconds: float


def simulated_events(
    events: int, users: int, seed: int = 7
) -> tuple[Iterator[dict[str, Any]], int]:
    """At most ``events`` simulated events of up to ``users`` users, and the days simulated."""
    days = max(7, min(360, round(events / (users * EVENTS_PER_USER_DAY))))
    config = SimulationConfig(users=users, days=days, seed=seed, arrival_days=max(1, days // 10))

    def cut() -> Iterator[dict[str, Any]]:
        for count, event in enumerate(simulate(config)):
            if count >= events:
                return
            yield event

    return cut(), days


def produce_all(
    client: Producer,
    topic: str,
    events: Iterator[dict[str, Any]],
    progress: Callable[[int], None] | None = None,
    every: int = 250_000,
) -> tuple[int, set[str]]:
    """Produce keyed JSON events as fast as possible; the count and the distinct user ids."""
    failed: list[str] = []

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            failed.append(str(err))

    count, users = 0, set()
    for event in events:
        user = event["user_id"]
        users.add(user)
        key, value = user.encode(), orjson.dumps(event)
        while True:
            try:
                client.produce(topic, value, key, on_delivery=delivered)
                break
            except BufferError:
                client.poll(0.05)
        count += 1
        if count % every == 0 and progress is not None:
            progress(count)
        if count % 10_000 == 0:
            client.poll(0)
    client.flush(120)
    if failed:
        raise BrokerError(f"{len(failed)} events were not delivered: {failed[0]}")
    return count, users


def produce_dataset(bootstrap: str, topic: str, events: int, users: int) -> Dataset:
    """Simulate and produce the data set into ``topic`` (created by the caller)."""
    started = time.monotonic()
    stream, days = simulated_events(events, users)
    say(f"producing {events:,} simulated events ({users:,} users, {days} days) to {topic}")
    count, seen = produce_all(
        producer(bootstrap), topic, stream, lambda n: say(f"  produced {n:,} events")
    )
    took = time.monotonic() - started
    say(f"data set ready: {count:,} events of {len(seen):,} users in {took:.1f}s")
    return Dataset(topic, count, len(seen), days, took)


def quick_event(user: str, timestamp_ms: int, index: int = 0) -> dict[str, Any]:
    """One small canonical event (the large phases' load)."""
    return {
        "schema_version": 1,
        "event_id": f"{user}-{index}-{timestamp_ms}",
        "user_id": user,
        "event_type": "page_view",
        "timestamp": timestamp_ms,
        "channel": "organic",
        "platform": "web",
    }


def quick_events(
    prefix: str, users: int, timestamp_ms: Callable[[], int]
) -> Iterator[dict[str, Any]]:
    """One event per user ``<prefix><n>``, stamped by ``timestamp_ms()`` when made."""
    for index in range(users):
        yield quick_event(f"{prefix}{index:07d}", timestamp_ms())
