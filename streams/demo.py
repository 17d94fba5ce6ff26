"""``engagement demo``: the main job on the embedded broker, end to end, in well under a minute.

Starts Tansu (or uses ``--bootstrap``), one worker on the event clock, and a small generator that
replays three weeks of a population's activity into ``user.events``; prints the live gauges it
reads back from the worker's ``/metrics`` and stops everything cleanly, also on Ctrl-C.
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any, TextIO

import orjson
from confluent_kafka import Producer

from streams.brokers import TansuBroker, free_port
from streams.kafka import producer_config
from streams.settings import Settings
from streams.workers import WorkerProcess

DAY_MS = 86_400_000
CHANNELS = ("organic", "paid_search", "paid_social", "email", "referral")
SHOWN = (
    ("events consumed", "engagement_events_consumed_total"),
    ("events folded", "engagement_events_folded_total"),
    ("DAU", 'engagement_active_users{window="1d"}'),
    ("WAU", 'engagement_active_users{window="7d"}'),
    ("MAU", 'engagement_active_users{window="30d"}'),
    ("users tracked", "engagement_users_tracked"),
    ("dormant", 'engagement_stage_users{stage="dormant"}'),
    ("signals dormant", 'engagement_signals_emitted_total{kind="dormant"}'),
    ("signals reactivated", 'engagement_signals_emitted_total{kind="reactivated"}'),
)


def generate(users: int, days: int, seed: int, end_ms: int) -> Iterator[dict[str, Any]]:
    """A small population in event-time order: arrivals, habits, some fade, some return."""
    rnd = random.Random(seed)
    start = end_ms - days * DAY_MS
    events = []
    for u in range(users):
        first = rnd.randrange(days)
        rate = rnd.choice((0.15, 0.4, 0.8))
        fade_at = rnd.randrange(first, days + 10)
        back_at = fade_at + rnd.choice((8, 12, 100))
        channel = rnd.choice(CHANNELS)
        for day in range(first, days):
            active = day == first or (rnd.random() < rate and (day < fade_at or day >= back_at))
            if active:
                ts = start + day * DAY_MS + rnd.randrange(DAY_MS)
                events.append(
                    {
                        "event_id": f"demo-{u}-{day}",
                        "user_id": f"user-{u:05d}",
                        "event_type": rnd.choice(
                            ("session_start", "page_view", "purchase", "share")
                        ),
                        "timestamp": ts,
                        "channel": channel,
                    }
                )
    events.sort(key=lambda e: e["timestamp"])
    yield from events


def _show(values: dict[str, float], out: TextIO) -> None:
    print(
        "  " + "  ".join(f"{label}={values.get(name, 0):.0f}" for label, name in SHOWN),
        file=out,
        flush=True,
    )


def run_demo(
    seconds: float = 8.0, users: int = 300, bootstrap: str | None = None, out: TextIO = sys.stdout
) -> int:
    with ExitStack() as stack:
        if bootstrap is None:
            broker = stack.enter_context(TansuBroker(port=free_port()))
            bootstrap = broker.bootstrap
            print(f"embedded Tansu broker at {bootstrap}", file=out, flush=True)
        env = {
            "ENGAGEMENT_BROKER": f"kafka://{bootstrap}",
            "ENGAGEMENT_CLOCK": "event",
            "ENGAGEMENT_APP_ID": f"engagement-demo-{int(time.time())}",
            "ENGAGEMENT_PARTITIONS": "4",
            "ENGAGEMENT_SESSION_TIMEOUT": "6s",
            "ENGAGEMENT_WEB_HOST": "127.0.0.1",
            "ENGAGEMENT_WEB_PORT": str(free_port()),
        }
        settings = Settings.from_env(env)
        worker = stack.enter_context(WorkerProcess(env, name="demo-worker"))
        print(f"worker ready at {worker.base_url} (event clock)", file=out, flush=True)
        values = _publish(settings, worker, seconds, users, out)
        time.sleep(2.0)
        values = worker.metrics()
        print("final:", file=out)
        _show(values, out)
    ok = (
        values.get("engagement_events_folded_total", 0) > 0
        and values.get('engagement_active_users{window="30d"}', 0) > 0
    )
    print("demo finished" if ok else "demo saw no live numbers", file=out)
    return 0 if ok else 1


def _publish(
    settings: Settings, worker: WorkerProcess, seconds: float, users: int, out: TextIO
) -> dict[str, float]:
    producer = Producer(producer_config(settings))
    events = list(generate(users, 21, seed=7, end_ms=int(time.time() * 1000)))
    per_tick = max(1, int(len(events) / max(1.0, seconds)))
    print(f"publishing {len(events)} events of {users} users over ~{seconds:.0f}s", file=out)
    values: dict[str, float] = {}
    for i in range(0, len(events), per_tick):
        for event in events[i : i + per_tick]:
            producer.produce(
                settings.input_topic, key=event["user_id"].encode(), value=orjson.dumps(event)
            )
        producer.flush(10)
        time.sleep(1.0)
        values = worker.metrics()
        _show(values, out)
    return values
