"""An ingest restarted at the end of an input partition must not have that end confirmed while
new records wait on the broker.

librdkafka knows no consumer position before the first record it hands over: after a restart
at a partition's end, ``Consumer.position`` is -1001 even once new records are on the broker.
The broker's answer about an idle partition's end is therefore compared with the offset its
end-of-partition event gave. Here with the real consumer, router and admin client: the new
records are not fetched (nothing polls), as when their leader moved away, and the partition
must hold the clock until they are read.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import orjson
import pytest
from confluent_kafka import (
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    KafkaError,
    Message,
    Producer,
    TopicPartition,
)

from agents.logic.frontier import InputFrontier
from agents.logic.routing import Routed, Router
from agents.logic.watermarks import InputWatermark
from streams.settings import Settings
from streams.worker.ingest import ingest_router
from streams.worker.input_ends import InputEnds
from tests.integration.conftest import BrokerHandle, create_topics
from tests.integration.workers import wait_for, worker_env

pytestmark = pytest.mark.integration

H = 3_600_000
DAY0 = 1_790_000_000_000


def produce(bootstrap: str, topic: str, partition: int, stamps: list[int]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for stamp in stamps:
        event = {
            "event_id": f"e{stamp}",
            "user_id": f"u{partition}",
            "event_type": "page_view",
            "timestamp": stamp,
        }
        producer.produce(topic, orjson.dumps(event), partition=partition)
    assert producer.flush(30) == 0


def read_to_end(consumer: Consumer, router: Router, partitions: set[int]) -> Routed:
    """Poll until each of ``partitions`` gave its end-of-partition event; one Routed."""
    messages: list[Message] = []
    ended: set[int | None] = set()
    deadline = time.monotonic() + 30
    while ended < partitions and time.monotonic() < deadline:
        for message in consumer.consume(100, 0.5):
            messages.append(message)
            error = message.error()
            if error is not None and error.code() == KafkaError._PARTITION_EOF:
                ended.add(message.partition())
    assert ended == partitions, f"ends seen: {ended}"
    return router.route_messages(
        messages,
        int(time.time() * 1000),
        end_code=KafkaError._PARTITION_EOF,
        no_timestamp=TIMESTAMP_NOT_AVAILABLE,
    )


def feed(routed: Routed, watermark: InputWatermark, frontier: InputFrontier) -> None:
    """What the ingest step does with a Routed, for the clocks (wall time 0: idle at once)."""
    for source, newest in routed.newest_ms.items():
        watermark.observe(source, newest)
    for source, ended in routed.at_end.items():
        if ended:
            watermark.reached_end(source, 0, routed.end_offsets[source])
            frontier.reached_end(source)


def turn_until(ends: InputEnds, check: Callable[[], bool], what: str) -> None:
    def turned() -> bool:
        ends.turn()
        return check()

    wait_for(turned, 30, what, every=0.05)


def now_ms() -> int:
    return int(time.time() * 1000)


def test_a_restart_at_the_end_does_not_confirm_an_end_with_records_behind_it(
    broker: BrokerHandle, unique_name
) -> None:
    name = unique_name("ends")
    settings = Settings.from_env(worker_env(broker, name))
    topic = settings.input_topic
    create_topics(broker.bootstrap, {topic: 2})
    produce(broker.bootstrap, topic, 0, [DAY0 + 50 * H])
    produce(broker.bootstrap, topic, 1, [DAY0 + 20 * H, DAY0 + 20 * H + 1, DAY0 + 20 * H + 2])
    # a restarted ingest: partition 0 from its start, partition 1 at its end (offset 3)
    consumer = Consumer(
        {"bootstrap.servers": broker.bootstrap, "group.id": name, "enable.partition.eof": True}
    )
    tp1 = TopicPartition(topic, 1)
    consumer.assign([TopicPartition(topic, 0, 0), TopicPartition(topic, 1, 3)])
    router = ingest_router(settings)
    watermark, frontier = InputWatermark(H, 0), InputFrontier(H)
    p0, p1 = (topic, 0), (topic, 1)
    watermark.assign([p0, p1])
    frontier.assign([p0, p1])
    watermark.seed(p1, DAY0 + 20 * H + 2)  # what the committed metadata would have said
    try:
        routed = read_to_end(consumer, router, {0, 1})
        assert routed.end_offsets == {p0: 1, p1: 3}
        assert consumer.position([tp1])[0].offset < 0  # no record read on partition 1
        feed(routed, watermark, frontier)
        ends = InputEnds(settings, watermark, frontier)
        assert watermark.value(now_ms()) == DAY0 + 19 * H + 2  # held: ends not confirmed yet
        # both ends confirmed: the clock goes to the newest event read, less the lateness
        turn_until(ends, lambda: watermark.value(now_ms()) == DAY0 + 49 * H, "ends confirmed")

        # partition 1 is not fetched from any more (as when its leader moved away) and gets
        # a record; partition 0 gets one too, read
        consumer.pause([tp1])
        produce(broker.bootstrap, topic, 1, [DAY0 + 30 * H])
        produce(broker.bootstrap, topic, 0, [DAY0 + 90 * H])
        feed(read_to_end(consumer, router, {0}), watermark, frontier)
        assert watermark.at_end() == [p1, p0]
        turn_until(ends, lambda: p1 not in watermark.at_end(), "partition 1 found unread")
        assert consumer.position([tp1])[0].offset < 0  # still unknown
        assert watermark.value(now_ms()) == DAY0 + 49 * H  # held by partition 1's record

        consumer.resume([tp1])  # read it: both at their end, the clock moves on
        feed(read_to_end(consumer, router, {1}), watermark, frontier)
        turn_until(ends, lambda: watermark.value(now_ms()) == DAY0 + 89 * H, "confirmed again")
    finally:
        consumer.close()
