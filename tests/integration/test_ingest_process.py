"""Ingest in a process of its own (ENGAGEMENT_INGEST_PROCESS): the same results as inside the
worker, its counters on the worker's /metrics, and it lives and dies with the worker."""

from __future__ import annotations

import os
import signal
import time

import pytest
from confluent_kafka import Producer

from streams.testbed.bench.measure import process_tree
from streams.testbed.processes import WorkerProcess
from tests.integration.conftest import BrokerHandle
from tests.integration.workers import running_worker, wait_for, wait_metric, worker_env

pytestmark = pytest.mark.integration
EVENTS = 2_000


def _produce(bootstrap: str, topic: str, count: int, prefix: str) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random"})
    now = int(time.time() * 1000)
    for i in range(count):
        user = f"{prefix}-user-{i % 100}"
        body = (
            f'{{"schema_version":1,"event_id":"{prefix}-{i}","user_id":"{user}",'
            f'"event_type":"page_view","timestamp":{now - 1000 + i % 500}}}'
        )
        producer.produce(topic, key=user.encode(), value=body.encode())
    producer.produce(topic, key=b"x", value=b"{not json")
    assert producer.flush(30) == 0


def _children(worker: WorkerProcess) -> list[int]:
    """The worker's ingest process (multiprocessing's resource tracker left out)."""
    proc = getattr(worker, "_proc", None)
    assert proc is not None
    return [pid for pid in process_tree(proc.pid) if pid != proc.pid and _spawned(pid)]


def _child(worker: WorkerProcess) -> int:
    """The ingest process, once the worker started it (readiness comes a moment earlier)."""
    wait_for(lambda: len(_children(worker)) == 1, timeout=30, what="the ingest process", every=0.1)
    (child,) = _children(worker)
    return child


def _spawned(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return b"spawn_main" in cmdline.read()
    except OSError:
        return False


def _niceness(pid: int) -> int:
    """The process's nice value (field 19 of /proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat") as stat:
        return int(stat.read().rsplit(")", 1)[1].split()[16])


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("mode", ["true", "false"])
def test_counts_are_the_same_with_ingest_apart_or_inside(
    broker: BrokerHandle, unique_name, mode: str
) -> None:
    name = unique_name(f"ingest-{mode}")
    env = worker_env(broker, name, ENGAGEMENT_INGEST_PROCESS=mode, ENGAGEMENT_INGEST_NICENESS="7")
    with running_worker(env) as worker:
        if mode == "true":  # the child runs 7 below the worker in CPU priority
            proc = getattr(worker, "_proc", None)
            assert proc is not None
            child = _child(worker)
            wait_for(
                lambda: _niceness(child) == _niceness(proc.pid) + 7,
                timeout=30,
                what="the ingest process to lower its priority",
                every=0.1,
            )
        _produce(broker.bootstrap, env["ENGAGEMENT_INPUT_TOPIC"], EVENTS, name)
        wait_metric([worker], "engagement_events_folded_total", EVENTS, timeout=90)
        wait_metric([worker], "engagement_events_dead_lettered_total", 1, timeout=30)
        metrics = worker.metrics()
        if mode == "false":
            assert _children(worker) == []
    assert metrics["engagement_events_consumed_total"] == EVENTS + 1
    assert metrics['engagement_events_valid_total{event_type="page_view"}'] == EVENTS
    assert metrics['engagement_events_invalid_total{reason="invalid_json"}'] == 1


def test_a_dead_ingest_process_stops_the_worker_and_a_dead_worker_its_ingest(
    broker: BrokerHandle, unique_name
) -> None:
    name = unique_name("ingest-death")
    env = worker_env(broker, name, ENGAGEMENT_INGEST_PROCESS="true")
    with running_worker(env, "first") as worker:
        child = _child(worker)
        os.kill(child, signal.SIGKILL)
        wait_for(lambda: not worker.running, timeout=60, what="the worker to exit")
        assert "the ingest process exited" in worker.log_tail(200)

    with running_worker(env, "second") as worker:
        child = _child(worker)
        proc = getattr(worker, "_proc", None)
        assert proc is not None
        os.kill(proc.pid, signal.SIGKILL)  # the worker alone: its child gets no signal of ours
        wait_for(lambda: not _alive(child), timeout=10, what="the ingest process to exit")


def test_sigterm_to_the_whole_group_still_drains_ingest(broker: BrokerHandle, unique_name) -> None:
    """A group-wide SIGTERM (as the tests and a terminal send) reaches the ingest process too;
    it ignores it and stops when the worker tells it to, so the worker exits 0."""
    name = unique_name("ingest-term")
    env = worker_env(broker, name, ENGAGEMENT_INGEST_PROCESS="true")
    worker = WorkerProcess(env, name="term")
    worker.start()
    try:
        child = _child(worker)
        _produce(broker.bootstrap, env["ENGAGEMENT_INPUT_TOPIC"], EVENTS, name)
        wait_metric([worker], "engagement_events_folded_total", EVENTS, timeout=90)
    finally:
        code = worker.stop()
    assert code == 0, worker.log_tail(80)
    assert not _alive(child)
