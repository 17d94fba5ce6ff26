"""The report's "Churn model" section: the parameters in use, the calibration by P(alive) band
with a bar pair per band, churn_risk against the plain N-days-inactive rule, and the return
rates of lapsed users signalled churn_risk or not.

:func:`model_data` reads the worker's final ``/metrics`` (the same gauges
:func:`streams.demo.quality.print_model` prints) into plain data for ``data.json``;
:func:`model_section` draws the section from the report data alone.
"""

from __future__ import annotations

import html
import itertools
from typing import Any

from agents.logic.calibration import BAND_EDGES, Band
from streams.demo.charts import FONT, PALETTE

PARAMETERS = ("r", "alpha", "a", "b")
GROUPS = ("signalled", "not_signalled")
WINDOWS = (7, 30)


def model_data(metrics: dict[str, float], dormant_days: float) -> dict[str, Any]:
    """The model's numbers from parsed ``/metrics``; ``parameters`` is None before a model."""
    values = {n: metrics.get(f'engagement_model_parameter{{name="{n}"}}') for n in PARAMETERS}
    bands = []
    for lower, upper in itertools.pairwise(BAND_EDGES):
        band = Band(lower, upper).label
        tag = f'{{band="{band}"}}'
        predicted = metrics.get(f"engagement_model_calibration_predicted_visits{tag}", 0.0)
        actual = metrics.get(f"engagement_model_calibration_actual_visits{tag}", 0.0)
        bands.append(
            {
                "band": band,
                "users": metrics.get(f"engagement_model_calibration_users{tag}", 0.0),
                "predicted": predicted,
                "actual": actual,
                "ratio": actual / predicted if predicted else None,
            }
        )
    returns = []
    for group, window in itertools.product(GROUPS, WINDOWS):
        tag = f'{{group="{group}",window="{window}"}}'
        n = metrics.get(f"engagement_model_churn_risk_eligible_users{tag}", 0.0)
        back = metrics.get(f"engagement_model_churn_risk_return_users{tag}", 0.0)
        rate = back / n if n else None
        returns.append(
            {"group": group, "window": window, "eligible": n, "returned": back, "rate": rate}
        )
    complete = all(v is not None for v in values.values())
    return {
        "parameters": values if complete else None,
        "fit_users": metrics.get("engagement_model_fit_users", 0.0),
        "bands": bands,
        "returns": returns,
        "dormant_days": dormant_days,
    }


def _share(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{100 * value:.{digits}f}%"


def calibration_svg(bands: list[dict[str, Any]]) -> str:
    """Predicted and actual active days per band as a pair of horizontal bars."""
    width, row_h, left, right = 560, 44, 90, 80
    height = 40 + row_h * len(bands) + 10
    top = max((max(b["predicted"], b["actual"]) for b in bands), default=0.0) or 1.0
    scale = (width - left - right) / top
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" {FONT} role="img" '
        'aria-label="Calibration: predicted and actual active days per P(alive) band">',
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
        f'<text x="12" y="22" font-size="13" fill="{PALETTE[0]}">■ predicted</text>'
        f'<text x="110" y="22" font-size="13" fill="{PALETTE[1]}">■ actual</text>'
        '<text x="190" y="22" font-size="12" fill="#52606d">(active days in 7 d)</text>',
    ]
    for i, band in enumerate(bands):
        y = 36 + i * row_h
        parts.append(
            f'<text x="{left - 8}" y="{y + 20}" font-size="12" text-anchor="end">'
            f"{html.escape(band['band'])}</text>"
        )
        for j, key in enumerate(("predicted", "actual")):
            w, by = band[key] * scale, y + 3 + j * 18
            parts.append(
                f'<rect x="{left}" y="{by}" width="{w:.1f}" height="15" fill="{PALETTE[j]}"/>'
                f'<text x="{left + w + 5:.1f}" y="{by + 12}" font-size="11" fill="#52606d">'
                f"{band[key]:,.0f}</text>"
            )
    return "".join(parts) + "</svg>"


def _calibration_table(bands: list[dict[str, Any]]) -> str:
    body = "".join(
        f'<tr><td class="l">{html.escape(b["band"])}</td><td>{b["users"]:,.0f}</td>'
        f"<td>{b['predicted']:,.1f}</td><td>{b['actual']:,.0f}</td>"
        f"<td>{'-' if b['ratio'] is None else format(b['ratio'], '.2f')}</td></tr>"
        for b in bands
    )
    return (
        '<table><tr><th class="l">P(alive) band</th><th>users</th><th>predicted</th>'
        f"<th>actual</th><th>actual / predicted</th></tr>{body}</table>"
    )


def _quality_table(rows: list[dict[str, Any]], dormant_days: float) -> str:
    if not rows:
        return "<p>No signal-quality check was made (the demo did not settle).</p>"
    names = {"churn_risk": "churn_risk (P(alive))", "dormant": f"{dormant_days:g} days inactive"}
    body = ""
    for r in rows:
        lead = r["median_lead_days"]
        body += (
            f'<tr><td class="l">{html.escape(names.get(r["kind"], r["kind"]))}</td>'
            f"<td>{r['users']:,}</td><td>{_share(r['precision'])}</td>"
            f"<td>{_share(r['recall'])}</td>"
            f"<td>{'-' if lead is None else format(lead, '.1f') + ' d'}</td></tr>"
        )
    return (
        '<table><tr><th class="l">rule</th><th>users</th><th>precision</th><th>recall</th>'
        f"<th>median lead</th></tr>{body}</table>"
    )


def _returns_table(returns: list[dict[str, Any]]) -> str:
    cell = {(r["group"], r["window"]): r for r in returns}
    body = ""
    for group in GROUPS:
        body += f'<tr><td class="l">{group.replace("_", " ")}</td>'
        for window in WINDOWS:
            r = cell.get((group, window))
            shown = "-" if r is None else f"{_share(r['rate'])} of {r['eligible']:,.0f}"
            body += f"<td>{shown}</td>"
        body += "</tr>"
    head = "".join(f"<th>back in {w} d</th>" for w in WINDOWS)
    return f'<table><tr><th class="l">lapsed users</th>{head}</tr>{body}</table>'


def model_section(data: dict[str, Any]) -> str:
    """The report's HTML section (from ``data["model"]`` and ``data["quality"]``)."""
    model = data.get("model")
    if not model or model["parameters"] is None:
        return "<h2>Churn model</h2><p>No model was in use.</p>"
    shown = ", ".join(f"{n} = {v:.3g}" for n, v in model["parameters"].items())
    users = model["fit_users"]
    fitted = f"refitted on {users:,.0f} users" if users else "not refitted"
    intro = (
        f"Parameters in use: {shown} ({fitted}). Calibration: users per P(alive) band at the "
        "reference moment, the active days the model predicted for them over the next 7 days, "
        "and the ones they had."
    )
    quality = (
        f"Signal quality against the simulator's truth (a lapse: 30 days without activity), "
        f"churn_risk next to the plain rule of {model['dormant_days']:g} days inactive:"
    )
    return (
        f"<h2>Churn model</h2><p>{html.escape(intro)}</p>"
        + _calibration_table(model["bands"])
        + f"<figure>{calibration_svg(model['bands'])}</figure>"
        + f"<p>{html.escape(quality)}</p>"
        + _quality_table(data.get("quality") or [], model["dormant_days"])
        + "<p>Return rates of lapsed users, signalled churn_risk or not:</p>"
        + _returns_table(model["returns"])
    )
