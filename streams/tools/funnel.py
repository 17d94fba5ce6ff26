"""``engagement funnel``: each activation funnel's conversion per step, by acquisition channel
(and cohort week), read from the state changelog of a running system.

engagement funnel [--by-cohort] [--format table|csv]

It counts exactly what the live funnel gauges count (:class:`FunnelCounts` over every user's
state): per step, the users who reached it and, of them, those who reached the next step within
the window. The weakest step of each funnel (the lowest step conversion over all channels) is
marked: that is where activation is lost first.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from collections import Counter
from dataclasses import dataclass
from typing import Any, TextIO

from agents.logic.days import Calendar
from agents.logic.funnel_counts import FunnelCounts, week_label
from agents.logic.funnels import Funnel
from streams.exits import USAGE
from streams.settings import Settings
from streams.tools.args import Loader, default_loader


@dataclass(frozen=True, slots=True)
class StepRow:
    funnel: str
    channel: str  # "all" for every channel together
    cohort: str  # week of entry (Monday), or "all"
    step: int  # 1-based
    event: str
    reached: int
    converted: int | None  # reached the next step within the window (None: the last step)
    entered: int  # reached step 1

    @property
    def conversion(self) -> float | None:
        if self.converted is None or not self.reached:
            return None
        return self.converted / self.reached

    @property
    def overall(self) -> float | None:
        """Share of the entered users who reached this step."""
        return self.reached / self.entered if self.entered else None


def funnel_rows(
    counts: FunnelCounts, funnels: tuple[Funnel, ...], channels: tuple[str, ...], by_cohort: bool
) -> list[StepRow]:
    """One row per funnel, channel (then "all"), cohort (or "all") and step."""
    totals: Counter[tuple[int, int, str, str]] = Counter()
    for (f, k, ch, week), users in counts.reached.items():
        cohort = week_label(week) if by_cohort else "all"
        channel = channels[ch] if ch < len(channels) else channels[0]
        totals[(f, k, channel, cohort)] += users
        totals[(f, k, "all", cohort)] += users
    groups = sorted({(f, ch, co) for f, _, ch, co in totals}, key=lambda g: (g[0], g[1] == "all"))
    rows = []
    for f, channel, cohort in groups:
        funnel = funnels[f]
        entered = totals[(f, 0, channel, cohort)]
        for k, step in enumerate(funnel.steps):
            last = k + 1 == len(funnel.steps)
            converted = None if last else totals[(f, k + 1, channel, cohort)]
            reached = totals[(f, k, channel, cohort)]
            rows.append(
                StepRow(
                    funnel.name, channel, cohort, k + 1, step.label, reached, converted, entered
                )
            )
    return rows


def weakest_steps(rows: list[StepRow]) -> dict[str, int]:
    """Per funnel, the step with the lowest conversion to the next over all channels and
    cohorts together (ties: the earlier step)."""
    weakest: dict[str, tuple[float, int]] = {}
    for row in rows:
        rate = row.conversion
        if row.channel != "all" or row.cohort != "all" or rate is None:
            continue
        best = weakest.get(row.funnel)
        if best is None or (rate, row.step) < best:
            weakest[row.funnel] = (rate, row.step)
    return {name: step for name, (_, step) in weakest.items()}


CSV_COLUMNS = (
    "funnel",
    "channel",
    "cohort",
    "step",
    "event",
    "reached",
    "converted",
    "entered",
    "conversion",
    "overall",
    "weakest",
)


def _is_weakest(row: StepRow, weakest: dict[str, int]) -> bool:
    """The row of all channels and cohorts at the funnel's weakest step."""
    return row.channel == "all" and row.cohort == "all" and weakest.get(row.funnel) == row.step


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def render_text(rows: list[StepRow], weakest: dict[str, int]) -> str:
    head = ("funnel", "channel", "cohort", "step", "event", "reached", "to next", "overall")
    lines = [head]
    for r in rows:
        mark = " <- weakest" if _is_weakest(r, weakest) else ""
        cells = (r.funnel, r.channel, r.cohort, str(r.step), r.event, str(r.reached))
        lines.append((*cells, _pct(r.conversion) + mark, _pct(r.overall)))
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    out = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)) for line in lines]
    return "\n".join(line.rstrip() for line in out) + "\n"


def render_csv(rows: list[StepRow], weakest: dict[str, int]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for r in rows:
        conversion = "" if r.conversion is None else f"{r.conversion:.6f}"
        overall = "" if r.overall is None else f"{r.overall:.6f}"
        converted = "" if r.converted is None else r.converted
        cells = (r.funnel, r.channel, r.cohort, r.step, r.event, r.reached, converted)
        writer.writerow((*cells, r.entered, conversion, overall, int(_is_weakest(r, weakest))))
    return buffer.getvalue()


RENDERERS = {"table": render_text, "csv": render_csv}


def funnel_command(
    settings: Settings,
    *,
    by_cohort: bool = False,
    fmt: str = "table",
    out: TextIO = sys.stdout,
    loader: Loader = default_loader,
) -> int:
    """Print every declared funnel's steps per channel (and cohort) as ``fmt``; exit status
    2 (usage) when none is declared."""
    if not settings.funnels:
        print("engagement funnel: no funnel declared (set ENGAGEMENT_FUNNELS)", file=sys.stderr)
        return USAGE
    calendar = Calendar(settings.timezone)
    counts = FunnelCounts()
    for _, state in loader(settings).users():
        counts.update(None, state, settings.funnels, calendar)
    rows = funnel_rows(counts, settings.funnels, settings.channel_labels, by_cohort)
    if by_cohort:  # the weakest step is judged on every cohort together
        rows += funnel_rows(counts, settings.funnels, settings.channel_labels, False)
    out.write(RENDERERS[fmt](rows, weakest_steps(rows)))
    return 0


def _run_funnel(args: argparse.Namespace) -> int:
    from streams.kafka import check_brokers

    settings = Settings.from_env_or_exit()
    if settings.funnels:  # else funnel_command says so, without waiting for a broker
        check_brokers(settings)
    return funnel_command(settings, by_cohort=args.by_cohort, fmt=args.format)


def add_funnel_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``engagement funnel``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "funnel",
        help="activation funnel conversion per step and channel, from the state changelog",
        description="Print each funnel of ENGAGEMENT_FUNNELS step by step, per acquisition "
        "channel: users who reached the step, the share who went on to the next step within "
        "the window, and the share of the entered users who got that far. The weakest step "
        "is marked. It counts exactly what the live funnel gauges count.",
    )
    parser.add_argument("--by-cohort", action="store_true", help="also per cohort week")
    parser.add_argument(
        "--format", choices=tuple(RENDERERS), default="table", help="table (text) or csv"
    )
    parser.set_defaults(func=_run_funnel)
    return parser
