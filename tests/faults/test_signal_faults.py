"""Fault scenarios about signals downstream can act on (issue 16), on the chart's defaults
(wall clock, RocksDB): a worker paused past its session while another takes over, an outage
longer than the dormancy delay while users keep sending events, and a first start on 60 days
of history. Each ends with the checks of every scenario (``checks.finish``: nothing missing,
nothing extra against the oracle) and asserts what the scenario is about on top.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from streams.testbed.processes import WorkerProcess
from tests.faults import Message, System, build_ledger, wait_until
from tests.faults.checks import finish, progress
from tests.faults.conftest import CHANNELS, Workload, canonical, workload
from tests.oracle import DAY_MS, population

PAUSE_S = 20.0  # beyond ENGAGEMENT_SESSION_TIMEOUT (6 s in the fault scenarios)
OUTAGE_S = 28.0  # beyond ENGAGEMENT_DORMANT_AFTER (20 s in wall-rocksdict)


def process_group(worker: WorkerProcess) -> int:
    proc = worker._proc  # WorkerProcess has no public pid (yet)
    assert proc is not None
    return int(proc.pid)


def owned(worker: WorkerProcess) -> float:
    return worker.metrics().get("engagement_partitions_owned", -1.0)


@pytest.mark.configs("wall-rocksdict")
def test_a_paused_worker_resumes_after_a_takeover(make_system) -> None:
    system: System = make_system("sigstop")
    load = workload(1001, system)
    w0, w1 = system.start("w0"), system.start("w1")
    wait_until(lambda: [owned(w0), owned(w1)] == [2.0, 2.0], 60, "two partitions each")
    system.publish_in_background(load.first + load.second)
    progress(system, load.size // 4)
    group = process_group(w1)
    os.killpg(group, signal.SIGSTOP)  # worker and its ingest process
    paused = time.monotonic()
    try:
        wait_until(lambda: owned(w0) == 4.0, 90, "w0 taking over all four partitions")
        took_over = time.monotonic() - paused
        time.sleep(max(0.0, PAUSE_S - took_over))
    finally:
        os.killpg(group, signal.SIGCONT)
    resumed = time.monotonic()
    # the lease stops a worker whose membership was reset; otherwise it rejoins the group
    wait_until(lambda: not w1.running or owned(w1) in (0.0, 2.0), 90, "w1 back or stopped")
    after = "rejoined" if w1.running else f"stopped itself (exit {w1.wait_exit(5)})"
    notes = f"SIGSTOP {resumed - paused:.0f} s, takeover {took_over:.1f} s, w1 {after}"
    row = finish(system, load, "worker paused (SIGSTOP), resumed", resumed, notes)
    assert not row.verdict.classified_extra, row.verdict.classified_extra
    # a forced restore: a new worker with an empty store rebuilds everything from the changelog
    system.stop_all()
    system.start("w2")
    restored = time.monotonic()
    row = finish(system, load, "... state restored from the changelog", restored, "fresh w2")
    assert not row.verdict.classified_extra, row.verdict.classified_extra


@pytest.mark.configs("wall-rocksdict")
def test_an_outage_longer_than_the_dormancy_delay(make_system) -> None:
    system: System = make_system("outage")
    load = workload(1002, system)
    worker = system.start("w0")
    system.publish_in_background(load.first + load.second)
    progress(system, load.size // 5)
    worker.kill()
    down = time.monotonic()
    time.sleep(OUTAGE_S)  # the users keep sending events meanwhile
    system.start("w0")
    notes = f"SIGKILL, down {time.monotonic() - down:.0f} s while users kept sending events"
    row = finish(system, load, "wall-clock outage > dormancy delay", down, notes)
    backlog = row.verdict.classified_extra.get("backlog", 0)
    assert not backlog, f"{backlog} signals fired before an older event in the backlog was read"


def history(seed: int, users: int, days: int) -> Workload:
    """``days`` of history up to a minute ago, in time order, published in bulk."""
    end_ms = int(time.time() * 1000) - 60_000
    start = end_ms // DAY_MS * DAY_MS - (days - 1) * DAY_MS
    events = sorted(population(seed, users, days, start, CHANNELS), key=lambda e: e.timestamp_ms)
    events = [e for e in events if e.timestamp_ms < end_ms]
    messages: list[Message] = [canonical(e) for e in events]
    half = len(messages) // 2
    return Workload(messages[:half], messages[half:], events, end_ms, clock="wall")


@pytest.mark.configs("wall-rocksdict")
def test_a_first_start_on_60_days_of_history(make_system) -> None:
    system: System = make_system(
        "history",
        ENGAGEMENT_DORMANT_AFTER="7d",
        ENGAGEMENT_CHURNED_AFTER="30d",
        ENGAGEMENT_ALLOWED_LATENESS="1h",
    )
    settings = system.settings
    max_age_ms = round(settings.signal_max_age * 1000)
    assert max_age_ms == 2 * DAY_MS, "the default ENGAGEMENT_SIGNAL_MAX_AGE"
    load = history(1003, 600, 60)
    system.publish(load.first + load.second)
    started = time.monotonic()
    worker = system.start("w0")
    row = finish(system, load, "first start on 60 days of history", started, "")
    suppressed = sum(
        value
        for name, value in worker.metrics().items()
        if name.startswith("engagement_signals_suppressed_total{")
    )
    stale = row.verdict.classified_missing.get("stale", 0)
    row.notes = f"{stale:,} stale by the oracle, {suppressed:,.0f} suppressed"
    assert stale > 0 and suppressed == stale, row.notes
    delivered = build_ledger(settings).signals
    too_old = [s for s in delivered if s.processed_at_ms - s.event_time_ms > max_age_ms]
    assert not too_old, f"{len(too_old)} delivered older than the max age: {too_old[:3]}"
