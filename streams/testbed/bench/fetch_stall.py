"""How long a record waits for its fetch while the processing loop is busy, by fetch_max_wait_ms.

Reproduces, on aiokafka alone, the bench's intermittent 1.4-1.9 s lag between a by_user record
and its fold. aiokafka keeps one fetch in flight per broker, for the partitions with nothing
buffered when it is sent. When the processing loop is busy past aiokafka's 100 ms prefetch
back-off, every busy partition still has records buffered, so the next fetch holds only quiet
partitions (in the worker: Faust's leader topic, which never gets a record); the broker keeps
it the whole ``fetch_max_wait_ms`` (Faust fixes 1500 ms; the worker holds it at most 100 ms,
:mod:`streams.worker.consumer`) and no other record of that broker is fetched until it returns.
Here, as in Faust, the consumer runs on an event loop in a thread of its own; the processing
thread takes its records with ``getmany`` and is busy ``--busy`` seconds every ``--every``
calls. Eight partitions get ~2,000 records a second, a ninth none::

    python -m streams.testbed.bench.fetch_stall --repeat 4 --busy 0.4 --every 5
"""

from __future__ import annotations

import argparse
import asyncio
import threading
import time
import uuid
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

import aiokafka
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from streams.testbed.bench.report import percentile
from streams.testbed.bench.run import start_kafka
from streams.testbed.brokers import default_kafka_lib

T = TypeVar("T")


def _produce(bootstrap: str, topic: str, stop: threading.Event) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    sent = 0
    while not stop.is_set():
        for _ in range(10):  # ~2,000 records a second over 8 partitions
            producer.produce(topic, b"x" * 100, partition=sent % 8)
            sent += 1
        producer.poll(0)
        time.sleep(0.005)
    producer.flush(10)


def lags_ms(bootstrap: str, wait_ms: int, busy_s: float, every: int, seconds: float) -> list[float]:
    """Each record's lag (ms) after a 2 s warm-up, with fetches held ``wait_ms`` at most."""
    tag = uuid.uuid4().hex[:6]
    busy, quiet = f"stall-busy-{tag}", f"stall-quiet-{tag}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(busy, 8, 1), NewTopic(quiet, 1, 1)]).values():
        future.result()
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()

    def call(coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, loop).result()

    async def started() -> aiokafka.AIOKafkaConsumer:
        consumer = aiokafka.AIOKafkaConsumer(
            busy, quiet, bootstrap_servers=bootstrap, group_id=f"stall-{tag}",
            auto_offset_reset="latest", fetch_max_wait_ms=wait_ms, enable_auto_commit=False,
        )  # fmt: skip
        await consumer.start()
        return consumer

    consumer = call(started())
    stop = threading.Event()
    producer = threading.Thread(target=_produce, args=(bootstrap, busy, stop))
    producer.start()
    lags: list[float] = []
    warm, end, calls = time.time() + 2, time.time() + seconds, 0
    while time.time() < end:
        batch = call(consumer.getmany(timeout_ms=1000))
        now_ms = time.time() * 1000
        if now_ms > warm * 1000:
            lags.extend(now_ms - m.timestamp for records in batch.values() for m in records)
        calls += 1
        if calls % every == 0:
            time.sleep(busy_s)  # the processing thread busy; the consumer's thread goes on
    stop.set()
    producer.join()
    call(consumer.stop())
    loop.call_soon_threadsafe(loop.stop)
    return lags


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=4)
    parser.add_argument("--busy", type=float, default=0.4, help="seconds the loop is busy")
    parser.add_argument("--every", type=int, default=5, help="... after this many getmany calls")
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--waits", default="1500,100", help="fetch_max_wait_ms values")
    args = parser.parse_args(argv)
    broker = start_kafka(default_kafka_lib())
    try:
        for repeat in range(args.repeat):
            for wait in (int(w) for w in args.waits.split(",")):
                lags = lags_ms(broker.bootstrap, wait, args.busy, args.every, args.seconds)
                print(
                    f"run {repeat} fetch_max_wait_ms {wait}: {len(lags)} records, lag ms "
                    f"p50 {percentile(lags, 50):.0f} p99 {percentile(lags, 99):.0f} "
                    f"max {max(lags):.0f}, over 1 s: {sum(lag > 1000 for lag in lags)}",
                    flush=True,
                )
    finally:
        broker.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
