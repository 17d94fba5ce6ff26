"""Ingest in a process of its own: validation and routing on one core, the fold on another.

Ingest (JSON decode, schema validation, routing, the by_user batches) costs about as much CPU
per event as the fold behind it until deadlines fire, and a Faust worker is one Python thread. With
``ENGAGEMENT_INGEST_PROCESS`` on (``auto``: when the worker may run on two CPUs or more) the
worker starts the same :class:`~streams.worker.ingest.IngestService` in a child process, with
its own producer, and keeps only the fold. Nothing else changes: the child commits the input offsets
once its batches are in Kafka, exactly as it does inside the worker. The child runs
``ENGAGEMENT_INGEST_NICENESS`` below the worker in CPU priority (:func:`lower_priority`).

The worker and the child talk over a pipe. After each step's counting, before its batches
are produced, and every 250 ms, the child reports the counter totals that moved (mirrored into
the worker's own counters as they arrive, so ``/metrics`` is unchanged and never behind the
fold) and how far each ``events.by_user`` partition is delivered (for the drain on shutdown).
The worker sends ``stop`` on shutdown and waits for the child's final report. The child dies
with the worker: on a closed pipe, and by ``PR_SET_PDEATHSIG`` should the worker be killed
outright; it ignores SIGTERM and SIGINT, which are the worker's to act on. A child that exits
on its own crashes the worker, so the orchestrator restarts both.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import multiprocessing
import os
import signal
from collections.abc import Iterable
from multiprocessing.connection import Connection
from typing import Any

from mode import Service
from prometheus_client import CollectorRegistry
from prometheus_client import Counter as PromCounter
from prometheus_client.registry import Collector

from streams.exits import FAILURE
from streams.logs import setup_logging
from streams.redaction import mask_secrets
from streams.settings import Settings
from streams.worker.delivery import Deliverer
from streams.worker.gc_tuning import tune_gc
from streams.worker.ingest import IngestService, ingest_router
from streams.worker.metrics import Metrics

log = logging.getLogger(__name__)
REPORT_EVERY_S = 0.25
STOP_TIMEOUT_S = 30.0
PR_SET_PDEATHSIG = 1
CounterKey = tuple[str, tuple[tuple[str, str], ...]]  # (family, sorted labels)


def counter_totals(collectors: Iterable[Collector]) -> dict[CounterKey, float]:
    """Every counter sample of ``collectors`` (a registry, or some of its counters): (family
    name, labels) -> total."""
    totals: dict[CounterKey, float] = {}
    for family in (family for collector in collectors for family in collector.collect()):
        if family.type != "counter":
            continue
        for sample in family.samples:
            if sample.name.endswith("_total"):
                totals[(family.name, tuple(sorted(sample.labels.items())))] = sample.value
    return totals


class CounterMirror:
    """Adds the growth of another process's counter totals to this process's counters."""

    def __init__(self, metrics: Metrics) -> None:
        self._counters: dict[str, PromCounter] = {
            next(iter(counter.describe())).name: counter
            for counter in vars(metrics).values()
            if isinstance(counter, PromCounter)
        }
        self._seen: dict[CounterKey, float] = {}

    def apply(self, totals: dict[CounterKey, float]) -> None:
        for key, total in totals.items():
            delta = total - self._seen.get(key, 0.0)
            counter = self._counters.get(key[0])
            if delta <= 0 or counter is None:
                continue
            self._seen[key] = total
            labels = dict(key[1])
            (counter.labels(**labels) if labels else counter).inc(delta)


def die_with_parent(parent: int) -> None:
    """Linux: SIGKILL this process when the worker dies (even by SIGKILL); nothing it has not
    committed is lost, the next owner reads it again."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the closed pipe still stops the child
        pass
    if os.getppid() != parent:  # the worker died before the line above
        os._exit(FAILURE)


def child_main(settings: Settings, conn: Connection, parent: int) -> None:
    """The child process's entry point.

    SIGTERM and SIGINT are the worker's to handle: a signal sent to the whole process group
    (a terminal's Ctrl-C, ``kill -- -pgid``) must not end ingest before the worker has asked it
    to flush and commit."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent(parent)
    mask_secrets(settings.secrets())
    setup_logging(settings, "ingest")
    tune_gc()
    lower_priority(settings.ingest_niceness)
    asyncio.run(_serve(settings, conn))


def lower_priority(niceness: int) -> None:
    """Run this process ``niceness`` (ENGAGEMENT_INGEST_NICENESS) below the worker in CPU
    priority. Ingest reads ahead of the fold, the stage a signal waits for: where the two (and
    a broker on the same machine) want the same CPU, the fold and the broker go first and
    ingest takes the rest. It still gets every CPU they leave idle, and a fold that catches up
    with it finds nothing to do, so ingest then runs. Ten bench runs alternating 10 and 0
    (2,000,000 events, Kafka on the same 2 CPUs): 63,971-76,503 events/s against
    58,490-70,916, and 17.3-20.3 CPU-s per million events against 18.0-22.1; 10 was ahead in
    each of the five pairs (README, Performance)."""
    if niceness > 0:
        os.nice(niceness)  # raising it needs no privilege
        log.info("ingest runs %d below the worker in CPU priority (nice)", niceness)


async def _serve(settings: Settings, conn: Connection) -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry, settings.event_types)
    deliverer = Deliverer(settings, metrics)
    router = ingest_router(settings)
    sent: dict[CounterKey, float] = {}

    def report(collectors: Iterable[Collector] = (registry,)) -> None:
        """The counters that moved since the last report (totals), and the delivered offsets.
        After a step only the counters a step moves: collecting the whole registry took
        ~0.4 ms, once per step."""
        totals = counter_totals(collectors)
        moved = {key: total for key, total in totals.items() if sent.get(key) != total}
        sent.update(moved)
        conn.send((moved, dict(service.delivered_until)))

    def report_step() -> None:
        report(metrics.ingest_counters())

    service = IngestService(settings, metrics, deliverer, router, on_counted=report_step)
    await service.start()

    try:
        while not service.should_stop and not _stop_requested(conn):
            report()
            await asyncio.sleep(REPORT_EVERY_S)
    finally:
        await service.stop()
        deliverer.close()
        with contextlib.suppress(OSError):  # the worker is gone
            report()


def _stop_requested(conn: Connection) -> bool:
    try:
        return conn.poll() and conn.recv() == "stop"
    except (EOFError, OSError):  # the worker closed the pipe or died
        return True


class IngestProcess(Service):
    """The worker's handle on the ingest child: start, mirror its reports, stop it."""

    def __init__(self, settings: Settings, metrics: Metrics, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.mirror = CounterMirror(metrics)
        self.delivered_until: dict[int, int] = {}
        self._conn: Connection | None = None
        self._process: multiprocessing.process.BaseProcess | None = None

    async def on_start(self) -> None:
        context = multiprocessing.get_context("spawn")  # no fork of librdkafka's threads
        self._conn, child_conn = context.Pipe()
        self._process = context.Process(
            target=child_main,
            args=(self.settings, child_conn, os.getpid()),
            name="engagement-ingest",
        )
        self._process.start()
        child_conn.close()
        # reports are applied as they arrive: the counters of a step reach /metrics before
        # the fold can see its events
        asyncio.get_running_loop().add_reader(self._conn.fileno(), self._read_reports)
        log.info("ingest runs in process %s", self._process.pid)

    @Service.task
    async def _watch(self) -> None:
        while not self.should_stop:  # reports arrive through the reader added in on_start
            process = self._process
            if process is not None and not process.is_alive() and not self.should_stop:
                await self.crash(RuntimeError(f"the ingest process exited ({process.exitcode})"))
                return
            await self.sleep(REPORT_EVERY_S)

    def _read_reports(self) -> None:
        conn = self._conn
        if conn is None:
            return
        try:
            while conn.poll():
                totals, delivered = conn.recv()
                self.mirror.apply(totals)
                self.delivered_until.update(delivered)
        except (EOFError, OSError):  # the child is gone (_watch crashes the worker)
            asyncio.get_running_loop().remove_reader(conn.fileno())

    async def on_stop(self) -> None:
        process, conn = self._process, self._conn
        if process is None or conn is None:
            return
        with contextlib.suppress(OSError):  # the child is gone: the join below returns
            conn.send("stop")
        await asyncio.to_thread(process.join, STOP_TIMEOUT_S)
        asyncio.get_running_loop().remove_reader(conn.fileno())
        self._read_reports()
        if process.is_alive():
            log.warning("ingest process %s did not stop; killing it", process.pid)
            process.kill()
            await asyncio.to_thread(process.join, 5.0)
        conn.close()
        self._process = self._conn = None


def own_process(choice: str, cpus: int | None = None) -> bool:
    """``ENGAGEMENT_INGEST_PROCESS``: true, false, or auto (two CPUs or more to run on)."""
    if choice == "auto":
        available = cpus if cpus is not None else len(os.sched_getaffinity(0))
        return available >= 2
    return choice == "true"
