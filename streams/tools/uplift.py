"""``engagement uplift``: does acting on signals bring users back? Treatment against holdout.

engagement uplift [--metrics URL ...] [--channel NAME] [--alpha 0.05] [--json]

Reads the return-rate gauges (``engagement_signal_return_eligible_users`` and
``engagement_signal_returned_users``) from the ``/metrics`` endpoint of **every** worker and
sums them, as Prometheus does: each worker exports only the partitions it owns, so give all of
them (default: this host's ENGAGEMENT_WEB_PORT). Scraping the workers directly needs no
Prometheus and reads exact, current counts.

For each signal kind and window (returned within 1, 7, 30 days of the signal; only signals whose
window has closed count) it prints both arms' return rates, their difference (the uplift) and an
always-valid confidence interval (:mod:`streams.tools.sequential`): it may be read after every
scrape without inflating false alarms. "too early" means fewer than 30 users in an arm.
"""

from __future__ import annotations

import argparse
import math
import sys
import urllib.request
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

import orjson
from prometheus_client.parser import text_string_to_metric_families

from agents.logic.returns import WINDOW_DAYS
from schemas.records import SIGNAL_KINDS
from streams import exits
from streams.tools.sequential import ALPHA, Uplift, estimate

ELIGIBLE = "engagement_signal_return_eligible_users"
RETURNED = "engagement_signal_returned_users"
WINDOWS = tuple(f"{n}d" for n in WINDOW_DAYS)
# (metric, kind, arm, window) -> users, summed over workers and channels
Counts = Counter[tuple[str, str, str, str]]


@dataclass(frozen=True, slots=True)
class Row:
    kind: str
    window: str
    uplift: Uplift


def parse_counts(exposition: str, channel: str | None = None) -> Counts:
    """The return-rate gauges of one ``/metrics`` body, summed over channels (or one)."""
    counts: Counts = Counter()
    for family in text_string_to_metric_families(exposition):
        if family.name not in (ELIGIBLE, RETURNED):
            continue
        for sample in family.samples:
            labels = sample.labels
            if channel is None or labels.get("channel") == channel:
                key = (family.name, labels["kind"], labels["arm"], labels["window"])
                counts[key] += int(sample.value)
    return counts


def fetch_counts(urls: Iterable[str], channel: str | None = None, timeout: float = 10) -> Counts:
    """Every worker's gauges, summed."""
    total: Counts = Counter()
    for url in urls:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            total.update(parse_counts(answer.read().decode(), channel))
    return total


def uplift_rows(counts: Counts, alpha: float = ALPHA) -> list[Row]:
    """One row per signal kind and window."""
    rows = []
    for kind in SIGNAL_KINDS:
        for window in WINDOWS:

            def get(metric: str, arm: str, kind: str = kind, window: str = window) -> int:
                return counts[(metric, kind, arm, window)]

            uplift = estimate(
                get(ELIGIBLE, "treatment"),
                get(RETURNED, "treatment"),
                get(ELIGIBLE, "holdout"),
                get(RETURNED, "holdout"),
                alpha=alpha,
            )
            rows.append(Row(kind, window, uplift))
    return rows


def _pct(value: float) -> str:
    return "   -  " if math.isnan(value) else f"{100 * value:5.1f}%"  # NaN: no users


def print_rows(rows: Sequence[Row], out: TextIO) -> None:
    level = f"{1 - rows[0].uplift.alpha:.0%}" if rows else "95%"
    print(
        f"{'kind':<12}{'window':>7}{'treated':>9}{'rate':>8}{'holdout':>9}{'rate':>8}"
        f"{'uplift':>9}  {level} always-valid interval   verdict",
        file=out,
    )
    for row in rows:
        u = row.uplift
        span = "" if u.too_early else f"[{100 * u.low:+6.1f}, {100 * u.high:+6.1f}] pts"
        diff = "" if u.too_early else f"{100 * u.difference:+6.1f}pt"
        print(
            f"{row.kind:<12}{row.window:>7}{u.treated:>9}{_pct(u.treatment_rate):>8}"
            f"{u.held_out:>9}{_pct(u.holdout_rate):>8}{diff:>9}  {span:<29}{u.verdict}",
            file=out,
        )
    print(
        "\nuplift = treatment return rate - holdout return rate, among signals whose window has "
        "closed.\nThe interval holds whenever you look (an always-valid confidence sequence): "
        "if it\nexcludes 0 the signals' actions make a difference; if it includes 0, it is too "
        "early to\ntell and it narrows as more windows close. 'too early': under 30 users in an "
        "arm.",
        file=out,
    )


def as_json(rows: Sequence[Row]) -> list[dict[str, Any]]:
    return [
        {
            "kind": r.kind,
            "window": r.window,
            "treated": r.uplift.treated,
            "treated_returned": r.uplift.treated_returned,
            "held_out": r.uplift.held_out,
            "held_out_returned": r.uplift.held_out_returned,
            "uplift": None if r.uplift.too_early else r.uplift.difference,
            "low": r.uplift.low,
            "high": r.uplift.high,
            "verdict": r.uplift.verdict,
            "explanation": r.uplift.explain(),
        }
        for r in rows
    ]


def uplift_command(args: argparse.Namespace) -> int:
    urls = args.metrics
    if not urls:
        from streams.settings import Settings

        urls = [f"http://localhost:{Settings.from_env_or_exit().web_port}/metrics"]
    try:
        counts = fetch_counts(urls, args.channel)
    except OSError as exc:
        print(f"engagement: reading the workers' /metrics: {exc}", file=sys.stderr)
        return exits.FAILURE
    rows = uplift_rows(counts, args.alpha)
    if args.json:
        sys.stdout.write(orjson.dumps(as_json(rows), option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        print_rows(rows, sys.stdout)
    return 0


def add_uplift_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``engagement uplift`` on an ``add_subparsers()`` object."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "uplift",
        help="return rates of treatment vs holdout, with an always-valid interval",
        description="Does acting on signals bring users back? Per signal kind and window, the "
        "return rate of users whose signal was acted on (treatment) against the holdout's, "
        "their difference (the uplift) and an interval that stays valid however often you "
        "look. Reads the return-rate gauges from every worker's /metrics (pass them all).",
    )
    parser.add_argument(
        "--metrics",
        action="append",
        default=[],
        help="a worker's /metrics URL; repeat for every worker (default: this host's)",
    )
    parser.add_argument("--channel", default=None, help="only this acquisition channel")
    parser.add_argument("--alpha", type=float, default=ALPHA, help="error rate (default 0.05)")
    parser.add_argument("--json", action="store_true", help="JSON instead of a table")
    parser.set_defaults(func=uplift_command)
    return parser
