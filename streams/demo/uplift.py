"""The report's win-back uplift section: treatment against holdout, from the final /metrics.

The demo's simulator runs a win-back campaign on dormant signals (``--winback-effect``, default
:data:`streams.tools.simulate.DEFAULT_WINBACK_EFFECT`): treated users come back with that extra
chance, holdout users never. The section shows what ``engagement uplift`` reads off the worker.
"""

from __future__ import annotations

import html
from typing import Any, TextIO

from streams.tools.uplift import as_json, parse_counts, print_rows, uplift_rows


def uplift_data(metrics_text: str) -> list[dict[str, Any]]:
    """Every kind and window of ``engagement uplift``, as JSON-able rows."""
    return as_json(uplift_rows(parse_counts(metrics_text))) if metrics_text else []


def print_uplift(metrics_text: str, out: TextIO) -> None:
    """The dormant rows of ``engagement uplift`` on the terminal."""
    rows = [r for r in uplift_rows(parse_counts(metrics_text)) if r.kind == "dormant"]
    if metrics_text and rows:
        print("\nwin-back uplift (engagement uplift, dormant signals):", file=out)
        print_rows(rows, out)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:+.1f} pts"


def uplift_section(data: dict[str, Any]) -> str:
    """The HTML section (empty rows: a short note)."""
    cfg = data["config"]
    intro = (
        f"The simulated campaign acts on dormant signals: a treated user comes back with an "
        f"extra chance of {100 * cfg.get('winback_effect', 0):.0f}%; the "
        f"{100 * cfg.get('holdout_share', 0):.0f}% of users held out (arm holdout) get nothing. "
        "The uplift is the treatment return rate minus the holdout return rate among signals "
        "whose window has closed; the interval is always valid (it may be read every day "
        "without inflating false alarms). If it includes 0, it is too early to tell."
    )
    rows = [r for r in data.get("uplift", []) if r["kind"] in ("dormant", "churned")]
    if not rows:
        return f"<h2>Win-back uplift</h2><p>{html.escape(intro)}</p><p>No data.</p>"
    body = "".join(
        f'<tr><td class="l">{r["kind"]}</td><td>{r["window"]}</td>'
        f"<td>{r['treated']:,}</td><td>{_rate(r['treated_returned'], r['treated'])}</td>"
        f"<td>{r['held_out']:,}</td><td>{_rate(r['held_out_returned'], r['held_out'])}</td>"
        f"<td>{_pct(r['uplift'])}</td>"
        f"<td>{'' if r['uplift'] is None else _pct(r['low']) + ' to ' + _pct(r['high'])}</td>"
        f'<td class="l">{html.escape(r["explanation"])}</td></tr>'
        for r in rows
    )
    return (
        f"<h2>Win-back uplift</h2><p>{html.escape(intro)}</p>"
        '<table><tr><th class="l">signal</th><th>window</th><th>treated</th><th>returned</th>'
        "<th>held out</th><th>returned</th><th>uplift</th><th>95% always-valid interval</th>"
        f'<th class="l">what it means</th></tr>{body}</table>'
    )


def _rate(returned: int, total: int) -> str:
    return "-" if total == 0 else f"{100 * returned / total:.1f}%"
