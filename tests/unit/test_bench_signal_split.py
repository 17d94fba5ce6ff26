"""The engagement runs' rate before and after their first signal (bench.signal_split)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from streams.testbed.bench import profiled_run
from streams.testbed.bench.phases import Context, progress, wait_processed
from streams.testbed.bench.report import SystemRun, build_report, render_markdown
from streams.testbed.bench.signal_split import Progress, signal_split, split_lines
from streams.testbed.processes import parse_metrics

START = (10.0, 0, 0, 5.0, 1.0)  # the first input event read: worker 5 CPU-s, ingest 1 so far


def _samples(*readings: tuple[float, int, int]) -> list[Progress]:
    """Readings whose worker used 1 CPU-s and its ingest process 0.5 per second since START."""
    return [(t, n, s, 5.0 + (t - 10.0), 1.0 + (t - 10.0) / 2) for t, n, s in readings]


def test_the_rates_and_cpu_before_and_after_the_first_signal() -> None:
    samples = _samples((11.0, 100, 0), (12.0, 300, 0), (13.0, 350, 7), (14.0, 400, 20))
    assert signal_split(samples, START) == {
        "events_before_first_signal": 300,
        "events_per_s_before": 150.0,
        "events_after": 100,
        "events_per_s_after": 50.0,
        "signals": 20,
        # 2 CPU-s of the worker and 1 of its ingest process over 300 events, then 2 + 1 over 100
        "cpu_s_per_million_before": {"worker": 6666.67, "ingest_process": 3333.33},
        "cpu_s_per_million_after": {"worker": 20000.0, "ingest_process": 10000.0},
    }


@pytest.mark.parametrize(
    "samples",
    [
        [],
        [(11.0, 100, 0), (12.0, 300, 0)],  # no signal
        [(11.0, 100, 3), (12.0, 300, 9)],  # one before the first reading
        [(10.0, 0, 0), (12.0, 300, 9)],  # the last reading without one is the start
        [(11.0, 100, 0), (11.0, 300, 9)],  # no time after it
    ],
)
def test_no_split_without_a_before_and_an_after(samples: list[tuple[float, int, int]]) -> None:
    assert signal_split(_samples(*samples), START) is None


def test_the_split_is_in_the_json_and_the_markdown() -> None:
    split = signal_split(_samples((11.0, 1000, 0), (12.0, 2000, 0), (14.0, 3000, 1234)), START)
    run = SystemRun(3000, 4.0, 4.0, signal_split=split)
    assert run.to_json()["signal_split"]["events_per_s_after"] == 500.0
    assert "signal_split" not in SystemRun(3000, 4.0, 4.0).to_json()
    lines = split_lines({"engagement": run.to_json(), "raw_limit": SystemRun(1, 1, 1).to_json()})
    assert lines[-1] == (
        "- engagement-stream (ingest in its own process): 1,000 events/s over the 2,000 events "
        "before the first deadline fell due, 500 events/s over the 1,000 after it, while it "
        "fired 1,234 signals; CPU-s per 1M events before 1000.0 in the worker + 500.0 in its "
        "ingest process, after 2000.0 + 1000.0"
    )
    assert len(lines) == 4
    assert split_lines({"engagement": SystemRun(1, 1, 1).to_json()}) == []
    assert split is not None
    older = {key: value for key, value in split.items() if not key.startswith("cpu")}
    before_cpu = SystemRun(1, 1, 1, signal_split=older).to_json()
    assert split_lines({"engagement": before_cpu})[-1] == lines[-1].split(";")[0]


EXPOSITION = """# HELP engagement_events_folded_total Events folded into user state.
engagement_events_folded_total 1500.0
engagement_events_duplicate_total 20.0
engagement_signals_emitted_total{kind="dormant"} 30.0
engagement_signals_emitted_total{kind="churned"} 4.0
engagement_signals_suppressed_total{kind="dormant"} 2.0
engagement_events_late_total 9.0
"""


class Worker:
    """A worker whose /metrics answers a fixed exposition, its counts growing per call."""

    def __init__(self, readings: list[str]) -> None:
        self.readings = readings

    def metrics(self, *names: str) -> dict[str, float]:
        values = parse_metrics(self.readings.pop(0) if len(self.readings) > 1 else self.readings[0])
        return {key: value for key, value in values.items() if key.split("{")[0] in names}


def test_progress_sums_events_and_every_signal_kind_delivered_or_suppressed() -> None:
    workers: Any = [Worker([EXPOSITION]), Worker([EXPOSITION])]
    assert progress(workers) == (2 * 1520, 2 * 36)


def test_wait_processed_records_each_reading() -> None:
    early = EXPOSITION.replace("1500.0", "100.0").replace("} 30.0", "} 0.0")
    worker: Any = Worker([early, EXPOSITION])
    samples: list[Progress] = []
    assert wait_processed([worker], 1520, "test", samples=samples, pids=[os.getpid()]) == 1520
    assert [sample[1:3] for sample in samples] == [(120, 6), (1520, 36)]
    assert samples[0][0] <= samples[1][0]
    assert 0 < samples[0][3] <= samples[1][3]  # this process's own CPU seconds so far
    assert samples[0][4] >= 0


def _report(**figures: Any) -> dict[str, Any]:
    return build_report(
        created_utc="20260101T000000Z",
        machine={},
        dataset={},
        systems={"engagement": SystemRun(2_000_000, 20.0, 25.0)},
        **figures,
    )


COLLAPSED = "main (a.py:1);step (b.py:2);fire (c.py:3) 6\nmain (a.py:1);step (b.py:9) 4"


class Profiled:
    """py-spy's ``record`` as the profiled run calls it: the windows it was asked for."""

    def __init__(self, fail_second: bool = False) -> None:
        self.outputs: list[str] = []
        self.fail_second = fail_second

    def __call__(self, pid: int, seconds: float, output: Path, **modes: bool) -> str:
        self.outputs.append(output.name)
        if self.fail_second and len(self.outputs) == 2:
            raise RuntimeError("py-spy failed (-11): ")
        return COLLAPSED


def _profile(
    monkeypatch: pytest.MonkeyPatch, readings: list[str], recorder: Profiled, events: int
) -> dict[str, Any]:
    worker: Any = Worker(readings)
    monkeypatch.setattr(profiled_run, "start_workers", lambda *args: [worker])
    monkeypatch.setattr(profiled_run, "wait_owned", lambda *args: 0.0)
    monkeypatch.setattr(profiled_run, "stop_workers", lambda *args: None)
    monkeypatch.setattr(profiled_run, "pid_of", lambda worker: 42)
    monkeypatch.setattr(profiled_run, "record", recorder)
    ctx = Context("127.0.0.1:9092", "run", 8, "input", events, Path("/tmp"))
    return profiled_run.profile_engagement(ctx, 20.0)


def test_the_profiled_run_is_sampled_again_once_it_fires_a_signal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = EXPOSITION.replace("1500.0", "900.0").replace("} 30.0", "} 0.0")
    quiet = before.replace("} 4.0", "} 0.0").replace("} 2.0", "} 0.0")
    recorder = Profiled()
    result = _profile(monkeypatch, [quiet, quiet, EXPOSITION, EXPOSITION], recorder, 10_000)
    assert recorder.outputs == ["profile.txt", "profile-signals.txt"]
    assert result["events"] == 920
    after = result["after_first_signal"]
    assert (after["first_signal_after_events"], after["events"]) == (1520, 1520)
    assert after["top_self"][0] == {"function": "fire (c.py)", "self_pct": 60.0, "total_pct": 60.0}
    text = render_markdown(_report(profile=result))
    assert "Profile of the same run once it had fired its first signal (1,520 events in)" in text


def test_a_run_without_a_signal_has_one_profile_and_a_failed_second_keeps_the_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    quiet = EXPOSITION.replace("} 30.0", "} 0.0").replace("} 4.0", "} 0.0").replace("} 2.0", "} 0")
    recorder = Profiled()
    assert "after_first_signal" not in _profile(monkeypatch, [quiet], recorder, 1520)
    assert recorder.outputs == ["profile.txt"]
    failing = Profiled(fail_second=True)
    result = _profile(monkeypatch, [EXPOSITION], failing, 1520)
    assert result["top_self"]
    assert result["after_first_signal"] == {"failed": "py-spy failed (-11): "}
    text = render_markdown(_report(profile=result))
    assert "once it had fired its first signal: not taken (py-spy failed (-11): )." in text
