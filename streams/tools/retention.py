"""``engagement retention``: the cohort retention triangle of every partition of a running
system (read from the state changelog), as text and as an HTML heatmap.

engagement retention [--cohorts 14] [--by-channel] [--format table|csv|json] [--html FILE]
                     [--now TIME]

The triangle is read off :class:`agents.logic.aggregates.Aggregates` (cohort counters keyed
``(first active day, channel index, k)``, k = 0 being the cohort size), so it counts exactly what
the live retention gauges count.
"""

from __future__ import annotations

import argparse
import csv
import html
import io
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import orjson

from agents.logic.aggregates import Aggregates, rebuild
from agents.logic.days import Calendar
from streams.settings import Settings
from streams.tools.args import Loader, default_loader, now_arg, positive
from streams.worker.changelog import ChangelogSnapshot


@dataclass(frozen=True, slots=True)
class TriangleRow:
    """One cohort (optionally one channel of it): its size and users active on day c + k.

    ``counts[k]`` is None where day c + k is after today (the triangle's empty corner).
    """

    cohort_day: int
    channel: str | None
    size: int
    counts: tuple[int | None, ...]

    def percent(self, k: int) -> float | None:
        """Share of the cohort active on day c + k, in percent (None if unknown or empty)."""
        count = self.counts[k]
        if count is None or self.size == 0:
            return None
        return 100.0 * count / self.size


@dataclass(frozen=True, slots=True)
class Triangle:
    today: int
    columns: int
    rows: tuple[TriangleRow, ...]
    by_channel: bool


def retention_triangle(
    agg: Aggregates,
    today: int,
    n_cohorts: int,
    channels: Sequence[str],
    *,
    by_channel: bool = False,
) -> Triangle:
    """The last ``n_cohorts`` cohorts (oldest first, today's included), columns k = 0..n-1.

    ``channels[i]`` names channel index i (index 0 is ``other``). By channel, a cohort gets one
    row per channel with at least one user; otherwise one row per cohort, empty ones included.
    """
    if n_cohorts < 1:
        raise ValueError("at least one cohort is needed")
    rows = []
    for cohort_day in range(today - n_cohorts + 1, today + 1):
        groups: list[tuple[str | None, list[int]]]
        if by_channel:
            groups = [(name, [index]) for index, name in enumerate(channels)]
        else:
            groups = [(None, list(range(len(channels))))]
        for name, indexes in groups:
            size = sum(agg.cohort_users(cohort_day, ch, 0) for ch in indexes)
            if by_channel and size == 0:
                continue
            counts = tuple(
                sum(agg.cohort_users(cohort_day, ch, k) for ch in indexes)
                if cohort_day + k <= today
                else None
                for k in range(n_cohorts)
            )
            rows.append(TriangleRow(cohort_day, name, size, counts))
    return Triangle(today, n_cohorts, tuple(rows), by_channel)


def _cell(row: TriangleRow, k: int) -> str:
    count, pct = row.counts[k], row.percent(k)
    if count is None:
        return ""
    return f"{count} {pct:.1f}%" if pct is not None else str(count)


def render_text(triangle: Triangle, calendar: Calendar) -> str:
    """An aligned text table: cohort, [channel,] users, then ``count pct%`` per day k."""
    header = ["cohort", *(["channel"] if triangle.by_channel else []), "users"]
    header += [f"day {k}" for k in range(triangle.columns)]
    table = [header]
    for row in triangle.rows:
        cells = [calendar.iso(row.cohort_day)]
        if triangle.by_channel:
            cells.append(row.channel or "")
        cells.append(str(row.size))
        cells += [_cell(row, k) for k in range(triangle.columns)]
        table.append(cells)
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    n_left = 2 if triangle.by_channel else 1
    lines = [
        f"Retention of the {triangle.columns} cohorts up to {calendar.iso(triangle.today)}"
        f" ({calendar.name}): users active on day k after their first active day"
    ]
    for line in table:
        parts = [
            cell.ljust(width) if i < n_left else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(line, widths, strict=True))
        ]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines) + "\n"


def _cells(triangle: Triangle, calendar: Calendar) -> Iterator[dict[str, Any]]:
    """One dict per known cell: cohort, channel, users, day k, retained count and percent."""
    for row in triangle.rows:
        for k in range(triangle.columns):
            count, pct = row.counts[k], row.percent(k)
            if count is None:
                continue
            yield {
                "cohort": calendar.iso(row.cohort_day),
                "channel": row.channel,
                "users": row.size,
                "day": k,
                "retained": count,
                "percent": None if pct is None else round(pct, 2),
            }


def render_csv(triangle: Triangle, calendar: Calendar) -> str:
    """Long format, one row per known cell: cohort,channel,users,day,retained,percent."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for cell in _cells(triangle, calendar):
        writer.writerow({**cell, "channel": cell["channel"] or ""})
    return buffer.getvalue()


def render_json(triangle: Triangle, calendar: Calendar) -> str:
    """One JSON document: today, timezone, and per cohort (and channel) the retained counts and
    percents by day k (null where day k is still in the future)."""
    cohorts = [
        {
            "cohort": calendar.iso(row.cohort_day),
            "channel": row.channel,
            "users": row.size,
            "retained": list(row.counts),
            "percent": [
                None if (p := row.percent(k)) is None else round(p, 2)
                for k in range(triangle.columns)
            ],
        }
        for row in triangle.rows
    ]
    document = {
        "today": calendar.iso(triangle.today),
        "timezone": calendar.name,
        "days": triangle.columns,
        "by_channel": triangle.by_channel,
        "cohorts": cohorts,
    }
    return orjson.dumps(document).decode() + "\n"


RENDERERS = {"table": render_text, "csv": render_csv, "json": render_json}
CSV_COLUMNS = ("cohort", "channel", "users", "day", "retained", "percent")

_CSS = """
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px;
       color: #1f2933; background: #fff; }
h1 { font-size: 18px; margin: 0 0 4px; }
p.meta { color: #52606d; margin: 0 0 16px; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #e4e7eb; padding: 4px 8px; text-align: right; white-space: nowrap; }
th { background: #f5f7fa; position: sticky; top: 0; }
td.label { text-align: left; background: #f5f7fa; }
td.pending { background: #fafafa; }
td small { display: block; font-size: 11px; opacity: .8; }
"""


def _html_cell(row: TriangleRow, k: int) -> str:
    count, pct = row.counts[k], row.percent(k)
    if count is None:
        return '<td class="pending"></td>'
    if pct is None:
        return f"<td>{count}</td>"
    alpha = 0.08 + 0.92 * min(pct, 100.0) / 100.0
    color = "#fff" if pct >= 50 else "#1f2933"
    style = f"background: rgba(37, 99, 235, {alpha:.3f}); color: {color}"
    return (
        f'<td style="{style}" title="{count} of {row.size}">{pct:.1f}%<small>{count}</small></td>'
    )


def render_html(triangle: Triangle, calendar: Calendar, title: str = "Cohort retention") -> str:
    """A self-contained page (inline CSS, no scripts or external assets) with a heatmap table."""
    head = ["Cohort", *(["Channel"] if triangle.by_channel else []), "Users"]
    head += [f"Day {k}" for k in range(triangle.columns)]
    body = []
    for row in triangle.rows:
        cells = [f'<td class="label">{calendar.iso(row.cohort_day)}</td>']
        if triangle.by_channel:
            cells.append(f'<td class="label">{html.escape(row.channel or "")}</td>')
        cells.append(f"<td>{row.size}</td>")
        cells += [_html_cell(row, k) for k in range(triangle.columns)]
        body.append("<tr>" + "".join(cells) + "</tr>")
    meta = (
        f"{triangle.columns} cohorts up to {calendar.iso(triangle.today)} "
        f"({html.escape(calendar.name)}). Cell: share of the cohort active on day k after its "
        "first active day (count below); blank cells are still in the future."
    )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f'<h1>{html.escape(title)}</h1>\n<p class="meta">{meta}</p>\n<table>\n<thead><tr>'
        + "".join(f"<th>{html.escape(h)}</th>" for h in head)
        + "</tr></thead>\n<tbody>\n"
        + "\n".join(body)
        + "\n</tbody>\n</table>\n</body>\n</html>\n"
    )


# -- the command ------------------------------------------------------------------------------
def retention_today(settings: Settings, snapshot: ChangelogSnapshot, now_ms: int | None) -> int:
    """Today's day number: ``--now``, else the newest watermark (event clock), else wall clock."""
    calendar = Calendar(settings.timezone)
    if now_ms is None and settings.clock == "event":
        now_ms = snapshot.newest_watermark_ms() or None
        if now_ms is None:
            print(
                "engagement retention: no watermark in the changelog; using the wall clock",
                file=sys.stderr,
            )
    if now_ms is None:
        now_ms = int(time.time() * 1000)
    return calendar.day_of(now_ms)


def retention_command(
    settings: Settings,
    *,
    cohorts: int = 14,
    by_channel: bool = False,
    html_path: str | None = None,
    now_ms: int | None = None,
    out: TextIO = sys.stdout,
    loader: Loader = default_loader,
    fmt: str = "table",
) -> int:
    """Print the retention triangle of the last ``cohorts`` cohorts as ``fmt`` (table, csv or
    json); optionally write HTML (its "wrote" line goes to stderr)."""
    calendar = Calendar(settings.timezone)
    snapshot = loader(settings)
    today = retention_today(settings, snapshot, now_ms)
    agg = rebuild((state for _, state in snapshot.users()), calendar)
    channels = settings.channel_labels
    triangle = retention_triangle(agg, today, cohorts, channels, by_channel=by_channel)
    out.write(RENDERERS[fmt](triangle, calendar))
    if html_path:
        Path(html_path).write_text(render_html(triangle, calendar), encoding="utf-8")
        print(f"wrote {html_path}", file=sys.stderr if fmt != "table" else out)
    return 0


def _run_retention(args: argparse.Namespace) -> int:
    from streams.kafka import check_brokers

    settings = Settings.from_env_or_exit()
    now_ms = now_arg(settings, args.now)
    check_brokers(settings)
    return retention_command(
        settings,
        cohorts=args.cohorts,
        by_channel=args.by_channel,
        html_path=args.html,
        now_ms=now_ms,
        fmt=args.format,
    )


def add_retention_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``engagement retention``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "retention",
        help="the cohort retention triangle from the state changelog",
        description="Print the cohort retention triangle of every partition of a running "
        "system, read from the state changelog: for each cohort (users whose first active day "
        "it is), the share active on day k after it. It counts exactly what the live retention "
        "gauges count.",
    )
    parser.add_argument("--cohorts", type=positive, default=14, help="cohorts (and day columns)")
    parser.add_argument("--by-channel", action="store_true", help="one row per cohort and channel")
    parser.add_argument(
        "--format",
        choices=tuple(RENDERERS),
        default="table",
        help="table (aligned text), csv (one row per cohort, channel and day) or json",
    )
    parser.add_argument("--html", metavar="FILE", help="also write a self-contained HTML heatmap")
    parser.add_argument(
        "--now",
        metavar="TIME",
        help="today's date (default: newest watermark on the event clock, else the wall clock)",
    )
    parser.set_defaults(func=_run_retention)
    return parser
