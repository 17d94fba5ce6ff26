"""The profile of a separate engagement run: py-spy over its first seconds, and again once its
deadlines fall due (the measured runs are not slowed by sampling)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from streams.testbed.bench.data import say
from streams.testbed.bench.phases import (
    Context,
    pid_of,
    processed,
    progress,
    start_workers,
    stop_workers,
    wait_owned,
    worker_env,
)
from streams.testbed.bench.profile import record, top_functions
from streams.testbed.processes import WorkerProcess

WAIT_S = 300.0  # for the first signal of the profiled run


def profile_engagement(ctx: Context, seconds: float) -> dict[str, Any]:
    """A separate engagement run sampled by py-spy for ``seconds`` (so the measured runs are not
    slowed by sampling), then for ``seconds`` more once the run has fired its first signal
    (``after_first_signal``: at the bench's defaults the first window ends about where the
    deadlines start to fall due); the top functions, or ``failed``: why there are none (py-spy
    has segfaulted here once; the measured phases need not be lost with it)."""
    say(f"profile: engagement worker under py-spy for {seconds:.0f}s, twice")
    workers = start_workers(ctx, "profile", worker_env(ctx, "profile"), 1)
    try:
        wait_owned(workers, ctx.partitions)
        pid = pid_of(workers[0])
        try:
            text = record(pid, seconds, ctx.workdir / "profile.txt", native=True, gil=True)
        except RuntimeError as exc:
            say(f"profile: not taken: {exc}")
            return {"failed": str(exc)}
        result = _profiled(text, seconds, processed(workers))
        try:
            after = _after_first_signal(ctx, workers, seconds)
        except RuntimeError as exc:
            say(f"profile after the first signal: not taken: {exc}")
            after = {"failed": str(exc)}
    finally:
        stop_workers(workers)
    if after is not None:
        result["after_first_signal"] = after
    return result


def _after_first_signal(
    ctx: Context, workers: Sequence[WorkerProcess], seconds: float
) -> dict[str, Any] | None:
    """Once the run has fired a signal: the top functions of ``seconds`` of samples, with the
    events processed when the signal was seen; None if it handled the whole input without
    one."""
    events, signals = progress(workers)
    give_up = time.monotonic() + WAIT_S
    while not signals:
        if events >= ctx.events:
            return None
        if time.monotonic() > give_up:
            raise RuntimeError(f"no signal within {WAIT_S:.0f}s ({events:,} events processed)")
        time.sleep(0.1)
        events, signals = progress(workers)
    say(f"profile: first signal after {events:,} events; sampling {seconds:.0f}s more")
    output = ctx.workdir / "profile-signals.txt"
    text = record(pid_of(workers[0]), seconds, output, native=True, gil=True)
    return {**_profiled(text, seconds, processed(workers)), "first_signal_after_events": events}


def _profiled(text: str, seconds: float, events: int) -> dict[str, Any]:
    """The top functions of a recording, and how it was taken (``events``: processed by its
    end)."""
    result = top_functions(text)
    tool = (
        "py-spy record --subprocesses --native --gil --format raw (the thread holding the GIL "
        "only: CPU, not waits; C helpers counted as their caller)"
    )
    result.update(tool=tool, seconds=seconds, events=events)
    return result
