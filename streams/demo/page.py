"""The demo's report folder: ``index.html`` (works offline: inline CSS and SVG, no scripts),
``data.json`` (every number on the page), ``metrics-final.prom`` (the worker's last
``/metrics``), and ``charts/*.svg`` + ``charts/*.png``.

PNGs are screenshots of the same SVGs taken by headless Chromium (:mod:`streams.demo.chromium`):
one drawing code path, no plotting library; without Chromium the PNGs are skipped and the
page says so.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from schemas.records import SIGNAL_KINDS
from streams.demo.charts import bar_chart, heatmap, line_chart
from streams.demo.chromium import find_chromium, screenshot
from streams.demo.funnel import funnel_section
from streams.demo.model import model_section
from streams.demo.uplift import uplift_section
from streams.demo.view import STAGES
from streams.tools.retention import Triangle

log = logging.getLogger(__name__)

MAX_K = 30  # retention columns shown: day 0..30

_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px 32px;
       color: #1f2933; background: #fff; max-width: 1320px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; }
p.meta { color: #52606d; margin: 0 0 12px; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; margin: 4px 0 8px; }
th, td { border: 1px solid #e4e7eb; padding: 3px 10px; text-align: right; }
th { background: #f5f7fa; } td.l, th.l { text-align: left; }
td.ok { color: #15803d; font-weight: 600; } td.bad { color: #b91c1c; font-weight: 600; }
figure { margin: 8px 0 16px; } svg { max-width: 100%; height: auto; }
table.summary th { white-space: normal; font-size: 12px; max-width: 90px; }
"""


def triangle_json(triangle: Triangle, iso: Any) -> list[dict[str, Any]]:
    """Rows of a retention triangle as plain data (cohort as ISO date)."""
    return [
        {
            "cohort": iso(row.cohort_day),
            "channel": row.channel,
            "size": row.size,
            "counts": list(row.counts[: MAX_K + 1]),
        }
        for row in triangle.rows
    ]


def pooled_by_channel(rows: Sequence[dict[str, Any]]) -> dict[str, list[float | None]]:
    """Per channel, day-k retention pooled over the cohorts that reached day k."""
    kept: dict[str, list[int]] = {}
    sizes: dict[str, list[int]] = {}
    for row in rows:
        channel = row["channel"] or "all"
        k_kept = kept.setdefault(channel, [0] * (MAX_K + 1))
        k_size = sizes.setdefault(channel, [0] * (MAX_K + 1))
        for k, count in enumerate(row["counts"]):
            if count is not None:
                k_kept[k] += count
                k_size[k] += row["size"]
    return {
        ch: [kept[ch][k] / sizes[ch][k] if sizes[ch][k] else None for k in range(MAX_K + 1)]
        for ch in kept
    }


def make_charts(data: dict[str, Any]) -> dict[str, str]:
    """Every chart of the page as SVG, by file stem."""
    days, series = [d[5:] for d in data["days"]], data["series"]  # MM-DD
    cohorts = data["retention"]["cohorts"]
    by_channel = pooled_by_channel(data["retention"]["by_channel"])
    ks = [str(k) for k in range(MAX_K + 1)]
    return {
        "activity": line_chart(
            "Active users per simulated day (worker /metrics)",
            days,
            [("DAU", series["dau"]), ("WAU", series["wau"]), ("MAU", series["mau"])],
        ),
        "retention_by_cohort": heatmap(
            "Retention by daily cohort: share active on day k (changelog)",
            [f"{row['cohort']}  n={row['size']}" for row in cohorts],
            ks,
            [[_share(c, row["size"]) for c in row["counts"]] for row in cohorts],
        ),
        "retention_by_channel": heatmap(
            "Retention by channel, pooled over cohorts: % active on day k",
            list(by_channel),
            ks,
            list(by_channel.values()),
            cell_w=30,
            cell_h=22,
            annotate=True,
        ),
        "stages": line_chart(
            "Users per stage over time",
            days,
            [(stage, series[f"stage.{stage}"]) for stage in STAGES],
        ),
        "signals": bar_chart(
            "Signals emitted (worker /metrics, at the end)",
            [(kind, data["final"][f"signals.{kind}"]) for kind in SIGNAL_KINDS],
        ),
    }


def _share(count: int | None, size: int) -> float | None:
    return None if count is None or size == 0 else count / size


def _summary_table(data: dict[str, Any]) -> str:
    final = data["final"]
    rows = [
        ("DAU", final["dau"]),
        ("WAU", final["wau"]),
        ("MAU", final["mau"]),
        ("users tracked", final["users"]),
        ("events folded", final["folded"]),
        *((f"stage {s}", final[f"stage.{s}"]) for s in STAGES),
        *((f"signals {k}", final[f"signals.{k}"]) for k in SIGNAL_KINDS),
    ]
    head = "".join(f"<th>{html.escape(n)}</th>" for n, _ in rows)
    body = "".join(f"<td>{v:,.0f}</td>" for _, v in rows)
    return f'<table class="summary"><tr>{head}</tr><tr>{body}</tr></table>'


def _agreement_table(data: dict[str, Any]) -> str:
    rows = data["agreement"]
    if not rows:
        return "<p>No agreement check was made (the demo was interrupted).</p>"
    body = "".join(
        f'<tr><td class="l">{html.escape(r["name"])}</td><td>{r["metrics"]:,.0f}</td>'
        f'<td>{r["changelog"]:,.0f}</td><td class="{"ok" if r["ok"] else "bad"}">'
        f"{'equal' if r['ok'] else 'DIFFERENT'}</td></tr>"
        for r in rows
    )
    return (
        '<table><tr><th class="l">number</th><th>/metrics</th><th>changelog</th><th></th></tr>'
        f"{body}</table>"
    )


def render_page(data: dict[str, Any], charts: dict[str, str], pngs: bool) -> str:
    """The report page; ``charts`` inline, links to the PNGs when they were made."""
    cfg = data["config"]
    meta = (
        f"{cfg['users']:,} simulated users over {cfg['days']} days from {cfg['start']}, seed "
        f"{cfg['seed']}; {data['published']:,} events replayed in {data['wall_seconds']:.0f}s on "
        f"the event clock. Today (the watermark's day): {data['today']}."
    )
    if data.get("interrupted"):
        meta += " The demo was interrupted: the numbers are those recorded until then."
    figures = "".join(
        f"<h2>{html.escape(name.replace('_', ' ').capitalize())}</h2><figure>{svg}"
        + (f'<figcaption><a href="charts/{name}.png">PNG</a></figcaption>' if pngs else "")
        + "</figure>"
        for name, svg in charts.items()
    )
    channels = ", ".join(
        f"{c['name']} ({100 * c['share']:.0f}% of arrivals)" for c in cfg["channels"]
    )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>engagement-stream demo report</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f'<h1>engagement-stream demo report</h1>\n<p class="meta">{html.escape(meta)}</p>\n'
        f'<p class="meta">Channels, best configured retention first: {html.escape(channels)}.</p>'
        "<h2>Final numbers (the worker's /metrics at the end)</h2>"
        + _summary_table(data)
        + figures
        + uplift_section(data)
        + funnel_section(data)
        + model_section(data)
        + "<h2>Agreement: /metrics against a rebuild from the state changelog</h2>"
        + _agreement_table(data)
        + ("" if pngs else "<p>PNG charts skipped: no Chromium (apt-get install chromium).</p>")
        + "\n</body>\n</html>\n"
    )


def write_report(folder: Path, data: dict[str, Any], metrics_text: str) -> list[Path]:
    """Write the report folder; returns the files written."""
    charts_dir = folder / "charts"
    charts_dir.mkdir(parents=True, exist_ok=True)
    charts = make_charts(data)
    written = []
    for name, svg in charts.items():
        path = charts_dir / f"{name}.svg"
        path.write_text(svg, encoding="utf-8")
        written.append(path)
    pngs = _render_pngs(charts_dir, charts)
    written += pngs
    for name, content in (
        ("index.html", render_page(data, charts, bool(pngs))),
        ("metrics-final.prom", metrics_text),
    ):
        (folder / name).write_text(content, encoding="utf-8")
        written.append(folder / name)
    (folder / "data.json").write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2))
    written.append(folder / "data.json")
    return written


def _render_pngs(charts_dir: Path, charts: dict[str, str]) -> list[Path]:
    if find_chromium() is None:
        log.warning("no Chromium: the report's PNG charts are skipped")
        return []
    made = []
    for name, svg in charts.items():
        width, height = _svg_size(svg)
        shot = screenshot(charts_dir / f"{name}.svg", charts_dir / f"{name}.png", width, height)
        if shot.ok:
            made.append(shot.png)
        else:
            log.warning("Chromium did not render %s.png:\n%s", name, shot.stderr[-2000:])
    return made


def _svg_size(svg: str) -> tuple[int, int]:
    head = svg.split(">", 1)[0]
    width = int(head.split('width="', 1)[1].split('"', 1)[0])
    height = int(head.split('height="', 1)[1].split('"', 1)[0])
    return width, height
