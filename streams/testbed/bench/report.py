"""The benchmark's report: figures, targets, the JSON document and its Markdown table (pure).

Everything here is computed from numbers the phases measured; nothing reads a clock or a
process, so the tests can build and render reports from made-up figures.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from streams.testbed.bench.signal_split import split_lines


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation between closest ranks."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0.0 <= q <= 100.0:
        raise ValueError("q must be within [0, 100]")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summarize(values: Sequence[float]) -> dict[str, float | int | None]:
    """p50 / p99 / max and the number of samples (None figures when there are none)."""
    if not values:
        return {"p50": None, "p99": None, "max": None, "samples": 0}
    return {
        "p50": round(percentile(values, 50), 3),
        "p99": round(percentile(values, 99), 3),
        "max": round(max(values), 3),
        "samples": len(values),
    }


@dataclass(frozen=True, slots=True)
class SystemRun:
    """One system's pass over (a prefix of) the input: events, wall seconds, CPU seconds."""

    events: int
    wall_s: float
    cpu_s: float
    extrapolated: bool = False
    note: str = ""
    signal_split: dict[str, Any] | None = None  # engagement runs (bench.signal_split)

    @property
    def events_per_s(self) -> float:
        return self.events / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def cpu_s_per_million_events(self) -> float:
        return self.cpu_s / self.events * 1e6 if self.events else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "events_per_s": round(self.events_per_s, 1),
            "cpu_s_per_million_events": round(self.cpu_s_per_million_events, 2),
            "events": self.events,
            "wall_s": round(self.wall_s, 3),
            "cpu_s": round(self.cpu_s, 3),
            "extrapolated": self.extrapolated,
            "note": self.note,
            **({"signal_split": self.signal_split} if self.signal_split else {}),
        }


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return round(numerator / denominator, 3)


def _get(report: Mapping[str, Any], *path: str) -> Any:
    node: Any = report
    for key in path:
        if not isinstance(node, Mapping) or node.get(key) is None:
            return None
        node = node[key]
    return node


Check = Callable[[float], bool]
# name -> (what the report says, where the value is, pass when)
TARGETS: dict[str, tuple[str, tuple[str, ...], Check]] = {
    "engagement_events_per_s": (
        ">= 75,000 events/s",
        ("systems", "engagement", "events_per_s"),
        lambda v: v >= 75_000,
    ),
    "vs_naive": (">= 10x naive Faust", ("ratios", "engagement_vs_naive"), lambda v: v >= 10),
    "vs_raw_limit": (
        ">= 0.60 of raw limit",
        ("ratios", "engagement_vs_raw_limit"),
        lambda v: v >= 0.6,
    ),
    "vs_quix_state": (
        ">= 2x Quix Streams with state",
        ("ratios", "engagement_vs_quix_state"),
        lambda v: v >= 2,
    ),
    "cpu_s_per_million_events": (
        "<= 15 CPU-s",
        ("systems", "engagement", "cpu_s_per_million_events"),
        lambda v: v <= 15,
    ),
    "latency_p99_ms": ("<= 250 ms", ("latency_ms", "p99"), lambda v: v <= 250),
    "deadline_p99_ms": ("<= 1,000 ms", ("deadline_delay_ms", "p99"), lambda v: v <= 1000),
    "disk_bytes_per_user": ("<= 150 bytes", ("bytes_per_user", "disk"), lambda v: v <= 150),
    "recovery_s": ("<= 60 s", ("recovery_s",), lambda v: v <= 60),
    "scale_out_2_workers": (">= 1.7x", ("scale_out_2_workers_ratio",), lambda v: v >= 1.7),
}


def evaluate_targets(report: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Each target with its value and pass/fail (``None``: not measured in this run)."""
    out: dict[str, dict[str, Any]] = {}
    for name, (wanted, path, check) in TARGETS.items():
        value = _get(report, *path)
        out[name] = {
            "target": wanted,
            "value": value,
            "pass": None if value is None else bool(check(float(value))),
        }
    return out


def build_report(
    *,
    created_utc: str,
    machine: Mapping[str, Any],
    dataset: Mapping[str, Any],
    systems: Mapping[str, SystemRun | None],
    latency_ms: Mapping[str, Any] | None = None,
    deadline_delay_ms: Mapping[str, Any] | None = None,
    bytes_per_user: Mapping[str, Any] | None = None,
    recovery_s: float | None = None,
    scale_out_2_workers_ratio: float | None = None,
    profile: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
    notes: Sequence[str] = (),
) -> dict[str, Any]:
    """The JSON document: figures, ratios and targets."""
    runs = {name: run.to_json() if run is not None else None for name, run in systems.items()}
    engagement = _get(runs, "engagement", "events_per_s")
    one_process = _get(runs, "engagement_one_process", "events_per_s")
    report: dict[str, Any] = {
        "created_utc": created_utc,
        "machine": dict(machine),
        "dataset": dict(dataset),
        "systems": runs,
        "ratios": {
            "engagement_vs_raw_limit": ratio(engagement, _get(runs, "raw_limit", "events_per_s")),
            "engagement_vs_quix_state": ratio(engagement, _get(runs, "quix_state", "events_per_s")),
            "engagement_vs_naive": ratio(engagement, _get(runs, "naive_faust", "events_per_s")),
            "one_process_vs_raw_limit": ratio(one_process, _get(runs, "raw_limit", "events_per_s")),
            "one_process_vs_quix_state": ratio(
                one_process, _get(runs, "quix_state", "events_per_s")
            ),
            "one_process_vs_naive": ratio(one_process, _get(runs, "naive_faust", "events_per_s")),
        },
        "latency_ms": dict(latency_ms) if latency_ms else None,
        "deadline_delay_ms": dict(deadline_delay_ms) if deadline_delay_ms else None,
        "bytes_per_user": dict(bytes_per_user) if bytes_per_user else None,
        "recovery_s": None if recovery_s is None else round(recovery_s, 3),
        "scale_out_2_workers_ratio": scale_out_2_workers_ratio,
        "profile": dict(profile) if profile else None,
        "extra": dict(extra or {}),
        "notes": list(notes),
    }
    report["targets"] = evaluate_targets(report)
    return report


# -- Markdown --------------------------------------------------------------------------------
def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _systems_rows(report: Mapping[str, Any]) -> list[list[str]]:
    labels = {
        "engagement": "engagement-stream (1 worker, full pipeline, ingest in its own process)",
        "engagement_one_process": "engagement-stream (1 worker, full pipeline, one process)",
        "raw_limit": "raw limit (confluent-kafka loop: decode + validate + fold)",
        "quix_state": "Quix Streams with state (RocksDB + changelog: active days, last seen)",
        "naive_faust": "naive Faust agent (per event, one table write)",
    }
    rows = []
    for name, label in labels.items():
        run = _get(report, "systems", name)
        if run is None:
            rows.append([label, "—", "—", "—", "not run"])
            continue
        note = ("extrapolated from a prefix; " if run["extrapolated"] else "") + run["note"]
        rows.append(
            [
                label,
                _fmt(float(run["events_per_s"]), 0),
                _fmt(float(run["cpu_s_per_million_events"]), 1),
                _fmt(int(run["events"])),
                note.strip("; ") or "",
            ]
        )
    return rows


def _figure_rows(report: Mapping[str, Any]) -> list[list[str]]:
    def pair(*path: str) -> str:
        node = _get(report, *path)
        if node is None:
            return "—"
        return f"{_fmt(node.get('p50'))} / {_fmt(node.get('p99'))} ({_fmt(node.get('samples'))})"

    per_user = _get(report, "bytes_per_user") or {}
    return [
        ["engagement / raw limit", _fmt(_get(report, "ratios", "engagement_vs_raw_limit"), 3)],
        [
            "engagement / Quix Streams with state",
            _fmt(_get(report, "ratios", "engagement_vs_quix_state"), 2),
        ],
        ["engagement / naive Faust", _fmt(_get(report, "ratios", "engagement_vs_naive"), 1)],
        [
            "engagement in one process / raw limit",
            _fmt(_get(report, "ratios", "one_process_vs_raw_limit"), 3),
        ],
        [
            "engagement in one process / Quix Streams with state",
            _fmt(_get(report, "ratios", "one_process_vs_quix_state"), 2),
        ],
        [
            "engagement in one process / naive Faust",
            _fmt(_get(report, "ratios", "one_process_vs_naive"), 1),
        ],
        ["latency produce → reactivated signal, ms p50 / p99 (n)", pair("latency_ms")],
        [
            "the warm-up second's returns before them (not counted above), ms p50 / p99 (n)",
            pair("latency_ms", "warm_up"),
        ],
        [
            "of which produce → processed_at_ms, ms p50 / p99 (n)",
            pair("latency_ms", "processed_at"),
        ],
        [
            "of which after the first second of returns, ms p50 / p99 (n)",
            pair("latency_ms", "after_first_second"),
        ],
        ["latency p99 by second of the returns, ms", _by_second(report)],
        *_stage_rows(report),
        ["stage p99 in the first second of returns / after it, ms", _stage_split(report)],
        ["CPU while the returns were sent, % of a core", _cpu_shares(report)],
        ["dormancy deadline → signal, ms p50 / p99 (n)", pair("deadline_delay_ms")],
        ["RSS bytes per tracked user", _fmt(per_user.get("rss"), 0)],
        ["RocksDB bytes on disk per user (at rest)", _fmt(per_user.get("disk"), 0)],
        ["tracked users for the two lines above", _fmt(per_user.get("users"))],
        ["recovery from changelog, s", _fmt(_get(report, "recovery_s"), 2)],
        [
            "2 one-process workers / 1 one-process worker",
            _fmt(_get(report, "scale_out_2_workers_ratio"), 2),
        ],
    ]


STAGE_LABELS = {  # stage -> (its row's label, its name in the first-second row)
    "kafka_append": ("produce → Kafka acknowledged (event producer, broker append)", "append"),
    "ingest": ("Kafka acknowledged → by_user record (ingest step)", "ingest"),
    "by_user_fetch_and_fold": ("by_user record → fold (fetch, queue)", "fetch and fold"),
    "group_delivery": ("fold → signal record (group made durable)", "group"),
    "signal_fetch": ("signal record → consumed by the bench", "signal fetch"),
}


def _stage_split(report: Mapping[str, Any]) -> str:
    split = _get(report, "latency_ms", "stages_split") or {}
    early, later = split.get("first_second", {}), split.get("after", {})
    parts = [
        f"{label} {_fmt(early[name].get('p99'), 0)} / {_fmt(later[name].get('p99'), 0)}"
        for name, (_, label) in STAGE_LABELS.items()
        if name in early and name in later
    ]
    return " · ".join(parts) or "—"


def _by_second(report: Mapping[str, Any]) -> str:
    seconds = _get(report, "latency_ms", "by_second") or []
    return " · ".join(f"{row['second']}: {_fmt(row['p99'], 0)}" for row in seconds) or "—"


CPU_LABELS = {
    "kafka_broker": "Kafka broker",
    "worker": "worker",
    "ingest_process": "its ingest process",
    "bench": "bench (producer, consumers)",
    "total": "total",
}


def _cpu_shares(report: Mapping[str, Any]) -> str:
    shares = _get(report, "latency_ms", "cpu_percent_of_a_core") or {}
    cores = _get(report, "machine", "cores")
    parts = [
        f"{label} {_fmt(shares[name])}" for name, label in CPU_LABELS.items() if name in shares
    ]
    if parts and cores:
        parts[-1] += f" (of {100 * int(cores)})"
    return " · ".join(parts) or "—"


def _stage_rows(report: Mapping[str, Any]) -> list[list[str]]:
    """One row per latency stage: p50 / p99 and its share of the mean total."""
    stages = _get(report, "latency_ms", "stages") or {}
    rows = []
    for name, (label, _) in STAGE_LABELS.items():
        node = stages.get(name)
        if node is None:
            continue
        share = node.get("share")
        pct = "—" if share is None else f"{100 * float(share):.0f} %"
        value = f"{_fmt(node.get('p50'))} / {_fmt(node.get('p99'))} ({pct} of the mean)"
        rows.append([f"stage {label}, ms p50 / p99", value])
    return rows


def render_markdown(report: Mapping[str, Any]) -> str:
    """The report as Markdown: machine, data set, systems side by side, figures, targets."""
    machine = report.get("machine", {})
    dataset = report.get("dataset", {})
    lines = [f"# engagement-stream benchmark, {report.get('created_utc', '')}", ""]
    lines += [
        "Machine: "
        + ", ".join(f"{key} {_fmt(value)}" for key, value in machine.items() if value is not None),
        "",
        "Data: " + ", ".join(f"{key} {_fmt(value)}" for key, value in dataset.items()),
        "",
    ]
    lines += _table(
        ["system", "events/s", "CPU-s per 1M events", "events measured", "note"],
        _systems_rows(report),
    )
    lines += split_lines(report.get("systems") or {})
    lines += ["", *_table(["figure", "value"], _figure_rows(report)), ""]
    target_rows = [
        [
            name,
            str(t["target"]),
            _fmt(t["value"], 2),
            {True: "pass", False: "FAIL"}.get(t["pass"], "not measured"),
        ]
        for name, t in report.get("targets", {}).items()
    ]
    lines += _table(["target", "wanted", "measured", "result"], target_rows)
    profile = report.get("profile") or {}
    lines += _profile_lines("Profile of a full-pipeline run", profile)
    after = profile.get("after_first_signal") or {}
    first = after.get("first_signal_after_events")
    title = "Profile of the same run once it had fired its first signal"
    lines += _profile_lines(title + ("" if first is None else f" ({first:,} events in)"), after)
    latency_profile = (report.get("latency_ms") or {}).get("profile")
    lines += _profile_lines("Profile during the latency phase's returns", latency_profile)
    notes = report.get("notes") or []
    if notes:
        lines += ["", "Notes:", "", *(f"- {note}" for note in notes)]
    return "\n".join(lines) + "\n"


def _profile_lines(title: str, profile: Mapping[str, Any] | None) -> list[str]:
    if profile and profile.get("failed"):
        return ["", f"{title}: not taken ({profile['failed']})."]
    if not profile or not profile.get("top_self"):
        return []
    lines = ["", f"{title} ({profile.get('tool', '')}, {profile.get('samples', 0)} samples):", ""]
    lines += _profile_table(profile["top_self"])
    for name, part in (profile.get("processes") or {}).items():
        lines += [
            "",
            f"{name}: {_fmt(float(part.get('share_pct', 0)), 1)} % of the samples",
            "",
            *_parts_table(part.get("parts") or {}),
            *_profile_table(part.get("top_self") or []),
        ]
    return lines


def _parts_table(parts: Mapping[str, float]) -> list[str]:
    """Its samples by pipeline part (:data:`streams.testbed.bench.profile.PARTS`)."""
    if not parts:
        return []
    rows = [[name, _fmt(float(share), 1)] for name, share in parts.items()]
    return [*_table(["part of the pipeline", "% of its samples"], rows), ""]


def _profile_table(functions: list[Mapping[str, Any]]) -> list[str]:
    rows = [
        [str(f["function"]), _fmt(float(f["self_pct"]), 1), _fmt(float(f["total_pct"]), 1)]
        for f in functions
    ]
    return _table(["function (by own time)", "self %", "total %"], rows)


def write_report(report: Mapping[str, Any], folder: Path, stamp: str) -> tuple[Path, Path]:
    """``<folder>/<stamp>.json`` and ``.md``; returns both paths."""
    folder.mkdir(parents=True, exist_ok=True)
    json_path, md_path = folder / f"{stamp}.json", folder / f"{stamp}.md"
    json_path.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")
    md_path.write_text(render_markdown(report), encoding="utf-8")
    return json_path, md_path
