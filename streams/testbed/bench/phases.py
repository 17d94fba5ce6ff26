"""Throughput phases on the pre-produced input: engagement-stream, raw limit, naive Faust.

Each system reads the same input topic with its own consumer group / app id (and its own
topic prefix, so no internal topic is shared between runs).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from schemas.errors import BrokerError
from streams.testbed.bench.data import say
from streams.testbed.bench.measure import cpu_seconds, cpu_split
from streams.testbed.bench.naive import NaiveConfig, read_progress
from streams.testbed.bench.quix_state import pinned_version
from streams.testbed.bench.report import SystemRun
from streams.testbed.bench.signal_split import Progress, signal_split
from streams.testbed.brokers import free_port
from streams.testbed.processes import WorkerProcess

REPOSITORY = Path(__file__).resolve().parents[3]
PROCESSED = ("engagement_events_folded_total", "engagement_events_duplicate_total")
CONSUMED = "engagement_events_consumed_total"  # input events ingest read
SIGNALS = ("engagement_signals_emitted_total", "engagement_signals_suppressed_total")
STALL_S = 120.0


@dataclass
class Context:
    """What every phase needs to know about the run."""

    bootstrap: str
    run_id: str
    partitions: int
    input_topic: str
    events: int
    workdir: Path
    notes: list[str] = field(default_factory=list)
    broker_pid: int | None = None  # the Kafka broker's process, to read its CPU time

    @property
    def broker_url(self) -> str:
        return f"kafka://{self.bootstrap}"

    def name(self, phase: str) -> str:
        return f"bench-{self.run_id}-{phase}"


def worker_env(ctx: Context, phase: str, **settings: str) -> dict[str, str]:
    """ENGAGEMENT_* for a worker of ``phase`` (own app id and topic prefix)."""
    env = {
        "ENGAGEMENT_BROKER": ctx.broker_url,
        "ENGAGEMENT_APP_ID": ctx.name(phase),
        "ENGAGEMENT_TOPIC_PREFIX": ctx.name(phase),
        "ENGAGEMENT_INPUT_TOPIC": ctx.input_topic,
        "ENGAGEMENT_PARTITIONS": str(ctx.partitions),
        "ENGAGEMENT_STORE": "rocksdict://",
        "ENGAGEMENT_CLOCK": "event",
        "ENGAGEMENT_WEB_HOST": "127.0.0.1",
        "ENGAGEMENT_LOG_LEVEL": "warning",
    }
    env.update({f"ENGAGEMENT_{key.upper()}": value for key, value in settings.items()})
    return env


def start_workers(ctx: Context, phase: str, env: dict[str, str], count: int) -> list[WorkerProcess]:
    """Start ``count`` workers of one deployment (one port and data dir each)."""
    workers = []
    for index in range(count):
        workdir = ctx.workdir / f"{phase}-{index}"
        workdir.mkdir(parents=True, exist_ok=True)
        own = {**env, "ENGAGEMENT_WEB_PORT": str(free_port())}
        workers.append(WorkerProcess(own, workdir=workdir, name=f"{phase}-{index}"))
    for worker in workers:
        worker.start(wait_ready=None)
    return workers


def stop_workers(workers: Sequence[WorkerProcess], remove: bool = True) -> None:
    """Stop the workers: SIGKILL when their data is thrown away (a clean stop takes up to
    30 s and measures nothing), SIGTERM when it is kept. Their logs stay: a failed bench
    keeps its work dir for them (a finished one removes it whole)."""
    for worker in workers:
        if remove:
            worker.kill()
            shutil.rmtree(Path(worker.env["ENGAGEMENT_DATA_DIR"]), ignore_errors=True)
        else:
            worker.stop()


def pid_of(worker: WorkerProcess) -> int:
    proc = getattr(worker, "_proc", None)
    if proc is None:
        raise BrokerError(f"{worker.name} is not running")
    return int(proc.pid)


def wait_owned(workers: Sequence[WorkerProcess], partitions: int, timeout: float = 180.0) -> float:
    """Until every worker is ready and together they own each partition once; seconds taken."""
    started = time.monotonic()
    wanted = list(range(partitions))
    while time.monotonic() - started < timeout:
        owned: list[int] = []
        ready = True
        for worker in workers:
            if not worker.running:
                raise BrokerError(f"{worker.name} exited:\n{worker.log_tail()}")
            try:
                status, body = worker.get("/readyz", timeout=2)
            except OSError:
                status, body = 0, b""
            if status != 200:
                ready = False
                break
            owned += orjson.loads(body)["partitions"]
        if ready and sorted(owned) == wanted:
            return time.monotonic() - started
        time.sleep(0.2)
    raise BrokerError(f"workers not ready with all partitions after {timeout:.0f}s")


def processed(workers: Sequence[WorkerProcess]) -> int:
    """Events folded plus duplicates, summed over the workers."""
    return progress(workers)[0]


def progress(workers: Sequence[WorkerProcess]) -> tuple[int, int]:
    """Events processed (folded plus duplicates) and signals fired (delivered or suppressed as
    stale), summed over the workers."""
    events = signals = 0.0
    for worker in workers:
        values = worker.metrics(*PROCESSED, *SIGNALS)
        events += sum(values.get(name, 0.0) for name in PROCESSED)
        signals += sum(value for name, value in values.items() if name.startswith(SIGNALS))
    return int(events), int(signals)


def wait_first_read(
    workers: Sequence[WorkerProcess], pids: Sequence[int], timeout: float = 180.0
) -> Progress:
    """Until a worker has read an input event: a reading then, with no event or signal counted
    and the CPU seconds so far of the workers and of their ingest processes (start-up, before
    it, is not measured)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for worker in workers:
            if not worker.running:
                raise BrokerError(f"{worker.name} exited:\n{worker.log_tail()}")
            try:
                read = worker.metrics(CONSUMED).get(CONSUMED, 0.0)
            except (OSError, BrokerError):  # its web server is not up yet
                read = 0.0
            if read > 0:
                return (time.monotonic(), 0, 0, *cpu_split(pids))
        time.sleep(0.05)
    raise BrokerError(f"no worker read an input event within {timeout:.0f}s")


def folded(workers: Sequence[WorkerProcess]) -> int:
    """Events folded for the first time (no duplicates), summed over the workers."""
    return int(sum(worker.metrics(PROCESSED[0]).get(PROCESSED[0], 0.0) for worker in workers))


def wait_folds_end(
    workers: Sequence[WorkerProcess], pids: Sequence[int], quiet: float = 1.0
) -> tuple[int, float, float]:
    """Once folded + duplicates reached the input's size: poll until the folded count holds
    still for ``quiet`` seconds; the count, and the monotonic time and summed CPU seconds of
    its last growth (after a rebalance, duplicates re-read can make up that size while a
    worker still folds)."""
    last, grew, cpu = folded(workers), time.monotonic(), sum(map(cpu_seconds, pids))
    while time.monotonic() - grew < quiet:
        time.sleep(0.1)
        now = folded(workers)
        if now != last:
            last, grew, cpu = now, time.monotonic(), sum(map(cpu_seconds, pids))
    return last, grew, cpu


def wait_processed(
    workers: Sequence[WorkerProcess],
    expect: int,
    label: str,
    *,
    every: float = 5.0,
    samples: list[Progress] | None = None,
    pids: Sequence[int] = (),
) -> int:
    """Poll /metrics until ``expect`` events are processed; prints progress; the count. Each
    reading is added to ``samples`` if given (with the signals fired so far and the CPU seconds
    of the processes ``pids`` and of their descendants)."""
    last, last_change, last_say = -1, time.monotonic(), time.monotonic()
    while True:
        done, signals = progress(workers)
        now = time.monotonic()
        if samples is not None:
            samples.append((now, done, signals, *cpu_split(pids)))
        if done >= expect:
            return done
        if done != last:
            last, last_change = done, now
        elif now - last_change > STALL_S:
            tails = "\n".join(w.log_tail(15) for w in workers)
            raise BrokerError(f"{label}: stalled at {done:,} of {expect:,} events\n{tails}")
        if now - last_say >= every:
            say(f"  {label}: {done:,} / {expect:,} events")
            last_say = now
        time.sleep(0.25)


def measure_engagement(
    ctx: Context, phase: str, count: int = 1, ingest_process: str = "true"
) -> SystemRun:
    """``count`` workers over the whole input: from the first input event read to the last
    first-time fold. Not from all partitions owned: a worker ingests and folds while the others
    join, and with its ingest far ahead of its fold, a run timed from the rebalance on measured
    mostly folding (two workers: 3.19x one).

    ``ingest_process``: ENGAGEMENT_INGEST_PROCESS of the workers (``true``: ingest in a child
    process of each worker, whose CPU time is counted with the worker's)."""
    say(
        f"{phase}: starting {count} worker(s) (rocksdict, event clock, {ctx.partitions} "
        f"partitions, ingest process {ingest_process})"
    )
    env = worker_env(ctx, phase, ingest_process=ingest_process)
    workers = start_workers(ctx, phase, env, count)
    try:
        pids = [pid_of(w) for w in workers]
        start = wait_first_read(workers, pids)
        wait_owned(workers, ctx.partitions)
        samples: list[Progress] = []
        wait_processed(workers, ctx.events, phase, samples=samples, pids=pids)
        done, ended, cpu1 = wait_folds_end(workers, pids)
        wall, cpu = ended - start[0], cpu1 - start[3] - start[4]
    finally:
        stop_workers(workers)
    processes = "2 processes (ingest apart)" if ingest_process == "true" else "1 process"
    split = signal_split(samples, start)
    note = f"{count} worker(s), {processes} each"
    run = SystemRun(done, wall, cpu, note=note, signal_split=split)
    say(f"{phase}: {run.events:,} events in {wall:.1f}s = {run.events_per_s:,.0f} events/s")
    return run


def measure_raw(ctx: Context, phase: str = "raw_limit") -> SystemRun:
    """The raw confluent-kafka loop as a child process (its own consumer group per phase)."""
    say(f"{phase}: plain confluent-kafka loop (decode + validate + fold), one process")
    argv = [sys.executable, "-m", "streams.testbed.bench.raw", "--bootstrap", ctx.bootstrap]
    argv += ["--topic", ctx.input_topic, "--group", ctx.name(phase), "--expect", str(ctx.events)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=3600, check=False)
    if done.returncode != 0:
        raise BrokerError(f"{phase} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    result = orjson.loads(done.stdout.strip().splitlines()[-1])
    run = SystemRun(int(result["events"]), float(result["wall_s"]), float(result["cpu_s"]))
    say(f"{phase}: {run.events:,} events in {run.wall_s:.1f}s = {run.events_per_s:,.0f}/s")
    return run


def measure_quix_state(ctx: Context, python: Path) -> SystemRun | None:
    """Quix Streams with state (:mod:`streams.testbed.bench.quix_state`), run by ``python`` of
    its own virtual environment; None (and a note) when that environment is not there."""
    if not python.exists():
        ctx.notes.append(f"quix_state: not run, no {python} (make bench creates it)")
        say(f"quix_state: skipped, no {python}")
        return None
    say("quix_state: Quix Streams, RocksDB state + changelog, per-user fold, one process")
    python = python.absolute()  # not resolve(): the venv's python is a symlink out of it
    state_dir = ctx.workdir / "quix-state"
    argv = [str(python), "-m", "streams.testbed.bench.quix_state", "--bootstrap", ctx.bootstrap]
    argv += ["--topic", ctx.input_topic, "--group", ctx.name("quix"), "--expect", str(ctx.events)]
    argv += ["--state-dir", str(state_dir)]
    env = {**os.environ, "PYTHONPATH": str(REPOSITORY)}
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=3600, check=False, env=env, cwd=ctx.workdir
    )
    shutil.rmtree(state_dir, ignore_errors=True)
    if done.returncode != 0:
        raise BrokerError(f"quix_state failed ({done.returncode}):\n{done.stderr[-2000:]}")
    result = orjson.loads(done.stdout.strip().splitlines()[-1])
    pins = (REPOSITORY / "bench" / "quix-requirements.txt").read_text()
    note = f"quixstreams {pinned_version(pins)}, 1 process, its defaults"
    run = SystemRun(
        int(result["events"]), float(result["wall_s"]), float(result["cpu_s"]), note=note
    )
    say(f"quix_state: {run.events:,} events in {run.wall_s:.1f}s = {run.events_per_s:,.0f}/s")
    return run


def measure_naive(ctx: Context, prefix: int, seconds: float) -> SystemRun:
    """The naive Faust agent on a prefix of the input (``prefix`` events or ``seconds``)."""
    say(f"naive_faust: per-event Faust agent, first {prefix:,} events or {seconds:.0f}s")
    workdir = ctx.workdir / "naive"
    workdir.mkdir(parents=True, exist_ok=True)
    progress = workdir / "progress"
    config = NaiveConfig(
        ctx.bootstrap, ctx.input_topic, ctx.name("naive"), str(workdir / "data"),
        ctx.partitions, str(progress),
    )  # fmt: skip
    log = (workdir / "naive.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streams.testbed.bench.naive"],
        env={**os.environ, **config.env()}, cwd=workdir, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        first, last = _naive_samples(proc, progress, prefix, seconds, workdir)
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()
    events, wall, cpu = last[0] - first[0], last[1] - first[1], last[2] - first[2]
    note = f"measured on {events:,} of {ctx.events:,} events; events/s extrapolated to the rest"
    run = SystemRun(events, wall, cpu, extrapolated=events < ctx.events, note=note)
    say(f"naive_faust: {events:,} events in {wall:.1f}s = {run.events_per_s:,.0f} events/s")
    return run


Sample = tuple[int, float, float]


def _naive_samples(
    proc: subprocess.Popen[Any], progress: Path, prefix: int, seconds: float, workdir: Path
) -> tuple[Sample, Sample]:
    """The first progress sample with events handled, and the one ending the measurement."""
    first: Sample | None = None
    deadline = time.monotonic() + 180.0  # start-up and group join
    last_say = time.monotonic()
    while True:
        if proc.poll() is not None:
            tail = (workdir / "naive.log").read_text(errors="replace")[-3000:]
            raise BrokerError(f"naive Faust app exited:\n{tail}")
        sample = read_progress(progress)
        if first is None and sample is not None and sample[0] > 0:
            first, deadline = sample, time.monotonic() + seconds
        if first is not None and sample is not None:
            handled = sample[0] - first[0]
            if handled >= prefix or time.monotonic() >= deadline:
                return first, sample
            if time.monotonic() - last_say >= 5:
                say(f"  naive_faust: {handled:,} events")
                last_say = time.monotonic()
        elif time.monotonic() >= deadline:
            raise BrokerError(f"naive Faust app handled nothing; see {workdir / 'naive.log'}")
        time.sleep(0.1)
