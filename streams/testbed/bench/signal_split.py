"""The engagement runs' rate before their first signal and after it (pure).

The data set spans weeks of simulated activity. A user's first deadline (dormant, seven days
after their last activity) falls due only some way into it; from then on the worker also fires
deadlines, builds their signals and delivers them, work that neither the raw limit nor Quix
Streams does. The two rates show how the run's pace changes once that work starts, and the CPU
seconds per million events of each side, split between the worker and its ingest process, show
which process pays for it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

Progress = tuple[float, int, int, float, float]
"""A progress reading: monotonic seconds, events processed, signals fired (delivered or not),
and the CPU seconds so far of the workers' own processes and of their ingest processes."""

LABELS = {
    "engagement": "ingest in its own process",
    "engagement_one_process": "one process",
}


def signal_split(samples: Sequence[Progress], start: Progress) -> dict[str, Any] | None:
    """Events/s and CPU per event from ``start`` (the first input event read) to the last
    reading without a signal, and from there to the last reading; None if no signal fired, or
    one fired before the first reading after ``start``."""
    first = next((i for i, sample in enumerate(samples) if sample[2] > 0), None)
    if not first:
        return None
    at, last = samples[first - 1], samples[-1]
    if at[0] <= start[0] or last[0] <= at[0]:
        return None
    return {
        "events_before_first_signal": at[1],
        "events_per_s_before": round(at[1] / (at[0] - start[0]), 1),
        "events_after": last[1] - at[1],
        "events_per_s_after": round((last[1] - at[1]) / (last[0] - at[0]), 1),
        "signals": last[2],
        "cpu_s_per_million_before": _cpu_per_million(start, at),
        "cpu_s_per_million_after": _cpu_per_million(at, last),
    }


def _cpu_per_million(since: Progress, until: Progress) -> dict[str, float]:
    events = until[1] - since[1]
    if events <= 0:
        return {"worker": 0.0, "ingest_process": 0.0}
    return {
        "worker": round((until[3] - since[3]) / events * 1e6, 2),
        "ingest_process": round((until[4] - since[4]) / events * 1e6, 2),
    }


def split_lines(systems: Mapping[str, Any]) -> list[str]:
    """Markdown lines, one per engagement run whose split was measured."""
    lines = []
    for name, label in LABELS.items():
        split = (systems.get(name) or {}).get("signal_split")
        if not split:
            continue
        lines.append(
            f"- engagement-stream ({label}): {split['events_per_s_before']:,.0f} events/s over "
            f"the {split['events_before_first_signal']:,} events before the first deadline fell "
            f"due, {split['events_per_s_after']:,.0f} events/s over the "
            f"{split['events_after']:,} after it, while it fired {split['signals']:,} signals"
            + _cpu_words(split)
        )
    if not lines:
        return []
    return ["", "Before and after the first signal (raw limit and Quix fire none):", "", *lines]


def _cpu_words(split: Mapping[str, Any]) -> str:
    before, after = split.get("cpu_s_per_million_before"), split.get("cpu_s_per_million_after")
    if not before or not after:  # a report written before the split had CPU
        return ""
    return (
        f"; CPU-s per 1M events before {before['worker']:.1f} in the worker + "
        f"{before['ingest_process']:.1f} in its ingest process, after {after['worker']:.1f} + "
        f"{after['ingest_process']:.1f}"
    )
