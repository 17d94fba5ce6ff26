"""The demo's closing check: the worker's final ``/metrics`` against the same numbers rebuilt
from the state changelog (every user's latest state), and the report data built from both.

The rebuild uses the pure aggregates (:func:`agents.logic.aggregates.rebuild` and
:func:`~agents.logic.aggregates.snapshot`) at the changelog's newest watermark, exactly as the
worker computes its gauges on the event clock (today = the watermark's day, last complete day =
yesterday), so on a settled worker every number must be equal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agents.logic.aggregates import Aggregates, Snapshot, rebuild, snapshot
from agents.logic.days import Calendar
from agents.logic.state import Stage
from streams.demo.view import labels
from streams.settings import Settings
from streams.tools.retention import retention_triangle
from streams.worker.changelog import load_changelog


@dataclass(frozen=True)
class Rebuilt:
    """The changelog's view: aggregates, their gauges, and the day they describe."""

    agg: Aggregates
    gauges: Snapshot
    today: int
    channels: tuple[str, ...]


def rebuild_from_changelog(settings: Settings, timeout: float = 30.0) -> Rebuilt:
    calendar = Calendar(settings.timezone)
    changelog = load_changelog(settings, timeout=timeout)
    today = calendar.day_of(changelog.newest_watermark_ms())
    agg = rebuild((state for _, state in changelog.users()), calendar)
    channels = settings.channel_labels
    gauges = snapshot(agg, today, today - 1, settings.retention_days, len(channels))
    return Rebuilt(agg, gauges, today, channels)


def normalized(metrics: dict[str, float]) -> dict[str, float]:
    """The same samples keyed with their labels sorted (label order is not part of a series)."""
    out = {}
    for key, value in metrics.items():
        name = key.split("{", 1)[0]
        tags = sorted(labels(key).items())
        out[name + "{" + ",".join(f'{k}="{v}"' for k, v in tags) + "}" if tags else name] = value
    return out


def _metric(metrics: dict[str, float], name: str, **tags: str) -> float:
    """One sample of ``normalized`` metrics (0 if absent)."""
    pairs = sorted(tags.items())
    key = name + "{" + ",".join(f'{k}="{v}"' for k, v in pairs) + "}" if pairs else name
    return metrics.get(key, 0.0)


def compare(
    metrics: dict[str, float], rebuilt: Rebuilt, retention_days: Sequence[int]
) -> list[dict[str, Any]]:
    """Rows ``{name, metrics, changelog, ok}``: active users, stages, retention sums."""
    g = rebuilt.gauges
    metrics = normalized(metrics)
    rows: list[tuple[str, float, float]] = [
        (f"active users {w}", _metric(metrics, "engagement_active_users", window=w), g.active[w])
        for w in ("1d", "7d", "30d")
    ]
    rows += [
        (
            f"stage {s.label}",
            _metric(metrics, "engagement_stage_users", stage=s.label),
            g.stages[s],
        )
        for s in Stage
    ]
    rows.append(
        ("users tracked", _metric(metrics, "engagement_users_tracked"), sum(g.stages.values()))
    )
    for n in retention_days:
        for period in ("today", "last_complete"):
            for name, counter in (
                ("engagement_retention_cohort_users", g.cohort),
                ("engagement_retention_retained_users", g.retained),
            ):
                from_metrics = sum(
                    _metric(metrics, name, day=str(n), channel=ch, period=period)
                    for ch in rebuilt.channels
                )
                from_log = sum(counter[(n, i, period)] for i in range(len(rebuilt.channels)))
                label = "cohort" if name.endswith("cohort_users") else "retained"
                rows.append((f"day-{n} {label} ({period})", from_metrics, from_log))
    return [
        {"name": name, "metrics": a, "changelog": float(b), "ok": a == b} for name, a, b in rows
    ]


def retention_rows(rebuilt: Rebuilt, n_cohorts: int, iso: Any) -> dict[str, Any]:
    """The triangle by cohort (all channels) and by cohort and channel, as plain data."""
    from streams.demo.page import triangle_json

    out: dict[str, Any] = {}
    for key, by_channel in (("cohorts", False), ("by_channel", True)):
        triangle = retention_triangle(
            rebuilt.agg, rebuilt.today, n_cohorts, rebuilt.channels, by_channel=by_channel
        )
        rows = triangle_json(triangle, iso)
        out[key] = [r for r in rows if r["size"] > 0] if not by_channel else rows
    return out
