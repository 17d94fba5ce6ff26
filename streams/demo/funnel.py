"""The demo's activation funnel: per channel, from the final /metrics, next to the drop-off the
simulator was configured with (:mod:`streams.tools.onboarding`).

The weakest step measured (the lowest conversion to the next step, every channel together) must
be the step the simulator made weakest: the expected conversion of each step, weighting the
channels by their share of arrivals and by how many of their users reach the step.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from itertools import pairwise
from typing import Any, TextIO

from streams.testbed.processes import parse_metrics
from streams.tools.onboarding import DEFAULT_GO_ON, GO_ON, ONBOARDING_STEPS

_REACHED = re.compile(r"^engagement_funnel_reached_users\{(.*)\}$")


def designed_weakest(shares: dict[str, float]) -> int:
    """The 1-based step whose configured conversion to the next is lowest overall."""
    reach = dict(shares)  # share of all arrivals reaching the current step, per channel
    rates = []
    for k in range(len(ONBOARDING_STEPS) - 1):
        went_on = {ch: r * GO_ON.get(ch, DEFAULT_GO_ON)[k] for ch, r in reach.items()}
        rates.append(sum(went_on.values()) / sum(reach.values()))
        reach = went_on
    return 1 + min(range(len(rates)), key=rates.__getitem__)


def funnel_data(metrics_text: str, channels: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Users reaching each step per channel and per (cohort week, channel), conversions, the
    weakest step measured and the one designed."""
    steps = len(ONBOARDING_STEPS)
    cells = reached_by_cell(parse_metrics(metrics_text))
    reached: dict[str, list[int]] = {}
    for (_, channel), counts in cells.items():
        row = reached.setdefault(channel, [0] * steps)
        for k, users in enumerate(counts):
            row[k] += users
    total = [sum(row[k] for row in reached.values()) for k in range(steps)]

    def overall_rate(ch: str) -> float:
        return reached[ch][-1] / reached[ch][0] if reached[ch][0] else 0.0

    rows = [  # best overall conversion first
        {"channel": ch, "reached": reached[ch], "conversion": _conversions(reached[ch])}
        for ch in sorted(reached, key=overall_rate, reverse=True)
    ]
    by_cohort = [
        {"cohort": cohort, "channel": ch, "reached": counts, "conversion": _conversions(counts)}
        for (cohort, ch), counts in sorted(cells.items())
    ]
    overall = _conversions(total)
    measured = None
    if total[0] and all(c is not None for c in overall):
        measured = 1 + min(range(steps - 1), key=lambda k: overall[k] or 0.0)
    designed = designed_weakest({c["name"]: c["share"] for c in channels})
    return {
        "steps": list(ONBOARDING_STEPS),
        "by_channel": rows,
        "by_cohort": by_cohort,
        "all": {"reached": total, "conversion": overall},
        "weakest_step": measured,
        "designed_weakest_step": designed,
        "ok": measured == designed,
    }


def reached_by_cell(metrics: dict[str, float]) -> dict[tuple[str, str], list[int]]:
    """Users reaching each step, per (cohort week, channel), from parsed /metrics."""
    steps = len(ONBOARDING_STEPS)
    cells: dict[tuple[str, str], list[int]] = {}
    for name, value in metrics.items():
        match = _REACHED.match(name)
        if match is None:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1)))
        step = int(labels["step"])
        if not 1 <= step <= steps:
            continue
        row = cells.setdefault((labels.get("cohort", ""), labels["channel"]), [0] * steps)
        row[step - 1] += round(value)
    return cells


def live_funnel(metrics: dict[str, float]) -> str:
    """The live view's funnel line: each step's users (every channel and cohort) and the
    conversion to the next step; empty before anyone reached the first step."""
    steps = len(ONBOARDING_STEPS)
    total = [0] * steps
    for counts in reached_by_cell(metrics).values():
        for k, users in enumerate(counts):
            total[k] += users
    if not total[0]:
        return ""
    rates = _conversions(total)
    return "  ".join(
        f"{ONBOARDING_STEPS[k]} {total[k]:,}" + (f" -> {_pct(rates[k])}" if k < steps - 1 else "")
        for k in range(steps)
    )


def _conversions(reached: list[int]) -> list[float | None]:
    """Conversion from each step to the next (None where nobody reached the step)."""
    return [b / a if a else None for a, b in pairwise(reached)]


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def print_funnel(data: dict[str, Any], out: TextIO) -> None:
    if not data["all"]["reached"][0]:
        return
    steps = data["steps"]
    print("\nactivation funnel (reached, then conversion to the next step):", file=out)
    for row in [*data["by_channel"], {"channel": "all", **data["all"]}]:
        cells = "  ".join(
            f"{steps[k]} {row['reached'][k]:,}"
            + (f" -> {_pct(row['conversion'][k])}" if k < len(steps) - 1 else "")
            for k in range(len(steps))
        )
        print(f"  {row['channel']:<12} {cells}", file=out)
    print(
        f"weakest step: {data['weakest_step']} (the simulator made step "
        f"{data['designed_weakest_step']} weakest): {'ok' if data['ok'] else 'DIFFERENT'}",
        file=out,
    )


def funnel_section(data: dict[str, Any]) -> str:
    """The report's HTML section."""
    funnel = data.get("funnel")
    if not funnel or not funnel["all"]["reached"][0]:
        return "<h2>Activation funnel</h2><p>No data.</p>"
    steps = funnel["steps"]
    head = "".join(f"<th>{html.escape(s)}</th>" for s in steps)
    head += "".join(f"<th>{k + 1}&rarr;{k + 2}</th>" for k in range(len(steps) - 1))
    weakest = funnel["weakest_step"]
    body = ""
    for row in [*funnel["by_channel"], {"channel": "all channels", **funnel["all"]}]:
        cells = "".join(f"<td>{n:,}</td>" for n in row["reached"])
        for k, rate in enumerate(row["conversion"]):
            cls = ' class="bad"' if k + 1 == weakest else ""
            cells += f"<td{cls}>{_pct(rate)}</td>"
        body += f'<tr><td class="l">{html.escape(row["channel"])}</td>{cells}</tr>'
    intro = (
        "Each simulated user's first day starts with the onboarding funnel (signup, profile "
        "completed, first value, within 7 days); every channel drops off differently. The "
        f"weakest step measured, every channel together, is step {weakest}; the simulator "
        f"made step {funnel['designed_weakest_step']} weakest. Users who stop halfway get a "
        "stalled signal when their window ends."
    )
    return (
        f"<h2>Activation funnel</h2><p>{html.escape(intro)}</p>"
        f'<table><tr><th class="l">channel</th>{head}</tr>{body}</table>'
        + _cohort_table(funnel, head)
    )


def _cohort_table(funnel: dict[str, Any], head: str) -> str:
    """Per cohort (the week users entered the funnel) and channel: reached and conversion."""
    rows = funnel.get("by_cohort") or []
    if not rows:
        return ""
    body = ""
    for row in rows:
        cells = "".join(f"<td>{n:,}</td>" for n in row["reached"])
        cells += "".join(f"<td>{_pct(rate)}</td>" for rate in row["conversion"])
        body += (
            f'<tr><td class="l">{html.escape(row["cohort"])}</td>'
            f'<td class="l">{html.escape(row["channel"])}</td>{cells}</tr>'
        )
    intro = (
        "Per cohort (the week users entered the funnel, Monday) and channel: a late cohort "
        "has had less time to go on, so its later steps are still filling in."
    )
    return (
        f"<h3>By cohort and channel</h3><p>{html.escape(intro)}</p>"
        f'<table><tr><th class="l">cohort week</th><th class="l">channel</th>{head}</tr>'
        f"{body}</table>"
    )
