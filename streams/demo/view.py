"""What ``engagement demo`` shows while it runs, and what it records for the report.

* :class:`Recorder` turns each ``/metrics`` read into a row of the time series (one row per
  day of the worker's clock: the last values seen while that day was "today") and keeps the
  retention gauges of every cohort as it completes (period ``last_complete``).
* :class:`SignalFeed` follows the signal topics on a background thread (a fresh consumer
  group, from the beginning): the latest signals with their reasons, and counts per kind.
* :func:`render_frame` draws the live view as plain text with ANSI colours (redrawn in place on
  a terminal); :func:`render_line` is the one-line-per-day form for logs and pipes.
"""

from __future__ import annotations

import collections
import logging
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from agents.logic.days import Calendar
from agents.logic.state import Stage
from schemas.records import SIGNAL_KINDS, Signal
from streams.demo.funnel import live_funnel
from streams.settings import Settings
from streams.tools.signals import SignalConsumer

log = logging.getLogger(__name__)

STAGES = tuple(stage.label for stage in Stage)
LIFECYCLE = ("new", "returning", "resurrecting", "dormant")
# Keys of the exposition as prometheus_client writes them (labels in declaration order).
SERIES: dict[str, str] = {
    "dau": 'engagement_active_users{window="1d"}',
    "wau": 'engagement_active_users{window="7d"}',
    "mau": 'engagement_active_users{window="30d"}',
    "users": "engagement_users_tracked",
    "folded": "engagement_events_folded_total",
    **{f"stage.{s}": f'engagement_stage_users{{stage="{s}"}}' for s in STAGES},
    **{f"lifecycle.{s}": f'engagement_lifecycle_users{{status="{s}"}}' for s in LIFECYCLE},
    **{f"signals.{k}": f'engagement_signals_emitted_total{{kind="{k}"}}' for k in SIGNAL_KINDS},
}
_LABELS = re.compile(r'(\w+)="([^"]*)"')
_SPARKS = "▁▂▃▄▅▆▇█"
BOLD, DIM, RESET, CYAN, GREEN = "\x1b[1m", "\x1b[2m", "\x1b[0m", "\x1b[36m", "\x1b[32m"
HOME_CLEAR = "\x1b[H\x1b[2J"

Day = Callable[[int], int]


def labels(key: str) -> dict[str, str]:
    """``name{a="1",b="x"}`` -> ``{"a": "1", "b": "x"}``."""
    return dict(_LABELS.findall(key))


@dataclass
class Recorder:
    """The gauges per day of the worker's clock, and the retention of completed cohorts."""

    day_of: Day
    series: dict[int, dict[str, float]] = field(default_factory=dict)
    # (cohort day, N, channel) -> (retained users, cohort users), from period="last_complete"
    retention: dict[tuple[int, int, str], tuple[float, float]] = field(default_factory=dict)
    final_cells: set[tuple[int, int, str]] = field(default_factory=set)
    latest: dict[str, float] = field(default_factory=dict)
    today: int | None = None
    funnel: str = ""  # the activation funnel line (:func:`streams.demo.funnel.live_funnel`)

    def observe(self, metrics: dict[str, float]) -> bool:
        """Record one ``/metrics`` read; True if it started a new day."""
        watermark = metrics.get("engagement_watermark_timestamp_seconds", 0.0)
        if watermark <= 0:
            return False
        today = self.day_of(int(watermark * 1000))
        values = {key: metrics.get(name, 0.0) for key, name in SERIES.items()}
        new_day = today != self.today
        self.series[today] = values
        self.latest, self.today = values, today
        self.funnel = live_funnel(metrics)
        self._retention(metrics, today - 1)
        return new_day

    def _retention(self, metrics: dict[str, float], last_complete: int) -> None:
        """Cohort (day - N)'s day-N retention from both periods: "today" (may still grow)
        first, then "last_complete", whose values are final and are never overwritten."""
        found: dict[tuple[str, int, str], dict[str, float]] = {}
        for key, value in metrics.items():
            if key.startswith(("engagement_retention_cohort_users{", "engagement_retention_ret")):
                tags = labels(key)
                slot = (tags.get("period", ""), int(tags.get("day", "0")), tags.get("channel", ""))
                found.setdefault(slot, {})[key.split("{", 1)[0]] = value
        for (period, n, channel), pair in sorted(found.items(), reverse=True):  # today first
            day = last_complete + (1 if period == "today" else 0)
            cell = (day - n, n, channel)
            if period == "today" and cell in self.final_cells:
                continue
            if period == "last_complete":
                self.final_cells.add(cell)
            kept = pair.get("engagement_retention_retained_users", 0.0)
            self.retention[cell] = (kept, pair.get("engagement_retention_cohort_users", 0.0))

    def days(self) -> list[int]:
        """Every day from the first recorded one to today (a fast replay skips some)."""
        return list(range(min(self.series), max(self.series) + 1)) if self.series else []

    def column(self, key: str) -> list[float | None]:
        """One series over :meth:`days`, oldest first; None on days no read fell on."""
        return [self.series[d].get(key, 0.0) if d in self.series else None for d in self.days()]

    def pooled_retention(self, n: int) -> dict[str, float]:
        """Per channel: retained / cohort users on day N, summed over the completed cohorts."""
        totals: dict[str, list[float]] = {}
        for (_, days, channel), (kept, size) in self.retention.items():
            if days == n and size > 0:
                pair = totals.setdefault(channel, [0.0, 0.0])
                pair[0] += kept
                pair[1] += size
        return {ch: k / s for ch, (k, s) in totals.items() if s > 0}


class SignalFeed:
    """Follows the signal topics on a background thread: latest signals and counts per kind."""

    def __init__(self, settings: Settings, keep: int = 6) -> None:
        self.settings = settings
        self.latest: collections.deque[Signal] = collections.deque(maxlen=keep)
        self.counts: collections.Counter[str] = collections.Counter()
        self.error = ""
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="signal-feed", daemon=True)

    def start(self) -> SignalFeed:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            with SignalConsumer(self.settings, follow=True, dedupe=True) as consumer:
                while not self._stop.is_set():
                    signal = consumer.poll(0.5)
                    if signal is not None:
                        with self._lock:
                            self.latest.appendleft(signal)
                            self.counts[signal.kind] += 1
        except Exception as exc:  # the view goes on without signals
            self.error = str(exc)
            log.warning("signal feed stopped: %s", exc)

    def snapshot(self) -> tuple[list[Signal], dict[str, int]]:
        with self._lock:
            return list(self.latest), dict(self.counts)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)


def sparkline(values: Sequence[float | None], width: int = 60) -> str:
    """Unicode block sparkline of the last ``width`` values (scaled to their maximum)."""
    shown = [v for v in values if v is not None][-width:]
    top = max(shown, default=0.0)
    if top <= 0:
        return _SPARKS[0] * len(shown)
    return "".join(_SPARKS[min(7, int(v / top * 7.999))] for v in shown)


def describe_signal(signal: Signal) -> str:
    r = signal.reasons
    when = datetime.fromtimestamp(signal.event_time_ms / 1000, UTC).strftime("%m-%d %H:%M")
    why = f"{r.get('days_inactive', 0):.1f} d inactive"
    if "usual_gap_days" in r and r["usual_gap_days"] is not None:
        why += f", usual gap {float(r['usual_gap_days']):.1f} d"
    if "p_alive" in r:
        why += f", P(alive) {float(r['p_alive']):.2f}"
    return f"{when}  {signal.kind:<11} {signal.user_id:<10} {signal.channel:<11} {why}"


@dataclass(frozen=True)
class Progress:
    """Where the replay stands, for the header."""

    day: int  # simulated days published
    days: int
    published: int
    elapsed_s: float
    iso_day: str


def _triangle_lines(rec: Recorder, retention_days: Sequence[int], rows: int) -> list[str]:
    """Weekly cohorts (by the Monday of their first day) x day N, all channels pooled."""
    weeks: dict[int, dict[int, list[float]]] = {}
    for (cohort, n, _), (kept, size) in rec.retention.items():
        week = cohort - (cohort + 3) % 7  # day 0 (1970-01-01) was a Thursday
        cell = weeks.setdefault(week, {}).setdefault(n, [0.0, 0.0])
        cell[0] += kept
        cell[1] += size
    lines = ["  week of     " + "".join(f"{'day ' + str(n):>9}" for n in retention_days)]
    for week in sorted(weeks)[-rows:]:
        cells = [weeks[week].get(n, [0.0, 0.0]) for n in retention_days]
        shown = [f"{100 * k / s:8.1f}%" if s else f"{'':>9}" for k, s in cells]
        lines.append(f"  {Calendar.iso(week)}  " + "".join(shown))
    return lines


def render_frame(
    rec: Recorder, feed: SignalFeed, progress: Progress, retention_days: Sequence[int]
) -> str:
    """The whole live view as one string (ANSI colours; no cursor movement)."""
    v = rec.latest
    mau = v.get("mau", 0.0)
    stick = 100 * v.get("dau", 0.0) / mau if mau else 0.0
    latest, counts = feed.snapshot()
    lines = [
        f"{BOLD}engagement-stream demo{RESET}  simulated day {progress.day}/{progress.days}"
        f" ({progress.iso_day})  {progress.elapsed_s:5.1f}s",
        f"events   published {progress.published:,}   folded {v.get('folded', 0):,.0f}",
        f"{BOLD}DAU {v.get('dau', 0):,.0f}   WAU {v.get('wau', 0):,.0f}   MAU {mau:,.0f}{RESET}"
        f"   users {v.get('users', 0):,.0f}   stickiness {stick:.1f}%",
        f"DAU/day  {CYAN}{sparkline(rec.column('dau'))}{RESET}",
        "stages   " + "  ".join(f"{s} {v.get('stage.' + s, 0):,.0f}" for s in STAGES),
        "today    " + "  ".join(f"{s} {v.get('lifecycle.' + s, 0):,.0f}" for s in LIFECYCLE),
        f"funnel   {rec.funnel or DIM + '(nobody has signed up yet)' + RESET}",
        "",
        f"{BOLD}retention by weekly cohort{RESET} (share active on day N, all channels)",
        *_triangle_lines(rec, retention_days, 9),
        "",
        f"{BOLD}day-7 retention by channel{RESET} (completed cohorts so far)",
        *_channel_bars(rec.pooled_retention(7)),
        "",
        f"{BOLD}signals{RESET}  "
        + "  ".join(f"{k} {v.get('signals.' + k, 0):,.0f}" for k in SIGNAL_KINDS)
        + f"   {DIM}(followed: {sum(counts.values()):,}){RESET}",
        *(f"  {GREEN}{describe_signal(s)}{RESET}" for s in latest),
    ]
    if feed.error:
        lines.append(f"  {DIM}signal feed: {feed.error}{RESET}")
    return "\n".join(lines) + "\n"


def _channel_bars(shares: dict[str, float]) -> list[str]:
    return [
        f"  {ch:<12} {100 * share:5.1f}% {CYAN}{'█' * round(share * 60)}{RESET}"
        for ch, share in sorted(shares.items(), key=lambda item: -item[1])
    ]


def render_line(rec: Recorder, progress: Progress, signals_followed: int) -> str:
    """One plain line (no ANSI) per simulated day, for logs and pipes."""
    v = rec.latest
    stages = " ".join(f"{s}={v.get('stage.' + s, 0):.0f}" for s in STAGES)
    fired = sum(v.get("signals." + k, 0.0) for k in SIGNAL_KINDS)
    return (
        f"day {progress.day:>3}/{progress.days} {progress.iso_day}  published={progress.published}"
        f" folded={v.get('folded', 0):.0f}  DAU={v.get('dau', 0):.0f} WAU={v.get('wau', 0):.0f}"
        f" MAU={v.get('mau', 0):.0f}  {stages}  signals={fired:.0f}"
        f" (followed {signals_followed})"
    )
