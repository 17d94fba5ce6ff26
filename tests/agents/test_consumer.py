"""The worker's aiokafka consumer as Faust builds it (streams.worker.consumer). No broker: the
consumer is made, not started."""

from __future__ import annotations

import asyncio
from typing import cast

from faust.transport.drivers.aiokafka import Transport

from streams.worker.app import heartbeat_interval
from streams.worker.consumer import RewindingConsumer
from tests.agents.conftest import MemorySink, make_worker


def test_the_stream_consumer_holds_a_fetch_at_most_100_ms_at_the_broker() -> None:
    """Faust builds it with 1500 ms; aiokafka keeps one fetch in flight per broker, so a fetch
    of quiet partitions only (Faust's leader topic) held that long delays every by_user
    record on that broker (the bench's intermittent 1.4-1.9 s lag before a fold)."""
    worker = make_worker(MemorySink())

    async def made() -> int:
        stream_consumer = worker.app.consumer
        assert isinstance(stream_consumer, RewindingConsumer)
        thread = stream_consumer._new_consumer_thread()
        consumer = thread._create_worker_consumer(cast(Transport, worker.app.transport))
        return int(consumer._fetch_max_wait_ms)

    assert asyncio.run(made()) == 100


def test_a_member_hears_of_a_rebalance_within_a_second() -> None:
    """A worker joining waits for the others to rejoin, which they do on their next
    heartbeat's answer: at session/5 (6 s at the default 30 s) the bench's second worker sat
    idle 6.7-7.1 s while the first one held all partitions."""
    worker = make_worker(MemorySink())
    assert worker.app.conf.broker_session_timeout == 30.0
    assert worker.app.conf.broker_heartbeat_interval == 1.0
    assert heartbeat_interval(3.0) == 0.3
