"""The engagement runs' rate before their first signal and after it (pure).

The data set spans weeks of simulated activity. A user's first deadline (dormant, seven days
after their last activity) falls due only some way into it; from then on the worker also fires
deadlines, builds their signals and delivers them, work that neither the raw limit nor Quix
Streams does. The two rates show how the run's pace changes once that work starts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

Progress = tuple[float, int, int]
"""A progress reading: monotonic seconds, events processed, signals fired (delivered or not)."""

LABELS = {
    "engagement": "ingest in its own process",
    "engagement_one_process": "one process",
}


def signal_split(samples: Sequence[Progress], began: float) -> dict[str, Any] | None:
    """Events/s from ``began`` to the last reading without a signal, and from there to the last
    reading; None if no signal fired, or one fired before the first reading after ``began``."""
    first = next((i for i, sample in enumerate(samples) if sample[2] > 0), None)
    if not first:
        return None
    at, before, _ = samples[first - 1]
    end, events, signals = samples[-1]
    if at <= began or end <= at:
        return None
    return {
        "events_before_first_signal": before,
        "events_per_s_before": round(before / (at - began), 1),
        "events_after": events - before,
        "events_per_s_after": round((events - before) / (end - at), 1),
        "signals": signals,
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
        )
    if not lines:
        return []
    return ["", "Before and after the first signal (raw limit and Quix fire none):", "", *lines]
