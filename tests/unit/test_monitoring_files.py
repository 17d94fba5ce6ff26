"""The rules, their promtool tests and the dashboard: valid, and naming only metrics that exist.

Needs ``promtool`` (Debian package ``prometheus``); without it these tests fail, never skip.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from agents.logic.aggregates import Snapshot
from streams.worker.metrics import Metrics, Published, SnapshotCollector
from tests.monitoring import (
    DASHBOARD_FILE,
    RULE_TESTS_FILE,
    RULES_FILE,
    iter_panels,
    load_dashboard,
    load_rules,
    promql_expressions,
)

COUNTERS = {
    "engagement_events_consumed_total",
    "engagement_events_valid_total",
    "engagement_events_invalid_total",
    "engagement_events_dead_lettered_total",
    "engagement_records_quarantined_total",
    "engagement_events_duplicate_total",
    "engagement_events_late_total",
    "engagement_events_folded_total",
    "engagement_signals_emitted_total",
    "engagement_signals_suppressed_total",
    "engagement_delivery_retries_total",
}
HISTOGRAM = "engagement_event_lag_seconds"
RETURN_HISTOGRAM = "engagement_signal_time_to_return_seconds"
GAUGES = {
    "engagement_build_info",
    "engagement_last_event_timestamp_seconds",
    "engagement_active_users",
    "engagement_lifecycle_users",
    "engagement_stage_users",
    "engagement_users_tracked",
    "engagement_retention_cohort_users",
    "engagement_retention_retained_users",
    "engagement_retention_retained_on_or_after_users",
    "engagement_winback_lapsed_users",
    "engagement_winback_reactivated_users",
    "engagement_signal_users",
    "engagement_signal_return_eligible_users",
    "engagement_signal_returned_users",
    "engagement_partitions_owned",
    "engagement_deadlines_pending",
    "engagement_watermark_timestamp_seconds",
    "engagement_input_frontier_lag_seconds",
    "engagement_snapshot_timestamp_seconds",
}
EXPORTED = (
    COUNTERS
    | GAUGES
    | {
        f"{name}_{suffix}"
        for name in (HISTOGRAM, RETURN_HISTOGRAM)
        for suffix in ("bucket", "sum", "count")
    }
)
NOT_OURS = {"up"}  # Prometheus' own; lag exporters' metrics come from the lag_metric variable

KEYWORDS = {"and", "or", "unless", "offset", "bool", "inf", "nan"}
STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
CLAUSES = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
IDENTIFIER = re.compile(r"[A-Za-z_:][\w:]*")


def metric_names(expr: str) -> set[str]:
    """Metric names an expression selects (strings, matchers, ranges, clauses, calls removed)."""
    text = STRINGS.sub('""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = CLAUSES.sub(" ", text)
    text = re.sub(r"\b\d[\w.]*", " ", text)  # numbers and durations (offset 1d)
    return {
        match.group()
        for match in IDENTIFIER.finditer(text)
        if match.group().lower() not in KEYWORDS
        and not text[match.end() :].lstrip().startswith("(")  # a function or aggregation
    }


def run_promtool(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    promtool = shutil.which("promtool") or "/usr/bin/promtool"
    if not Path(promtool).exists():
        pytest.fail(
            "promtool not found: install the Debian package 'prometheus' (make system-deps)",
            pytrace=False,
        )
    command = [promtool, *args]
    return subprocess.run(command, input=stdin, capture_output=True, timeout=120, check=False)


def exposition() -> bytes:
    """What a worker exports: its counters and a (zero) snapshot's gauges."""
    registry = CollectorRegistry()
    Metrics(registry, ["page_view"])
    published = Published(Snapshot(), 0.0, 0, 0, 0.0)
    registry.register(SnapshotCollector(lambda: published, ["other", "organic"], [1, 7, 30]))
    return generate_latest(registry)


def test_promtool_check_rules() -> None:
    result = run_promtool("check", "rules", str(RULES_FILE))
    assert result.returncode == 0, (result.stdout + result.stderr).decode()


def test_promtool_test_rules() -> None:
    result = run_promtool("test", "rules", str(RULE_TESTS_FILE))
    assert result.returncode == 0, (result.stdout + result.stderr).decode()


def test_promtool_check_metrics_accepts_the_exposition() -> None:
    result = run_promtool("check", "metrics", stdin=exposition())
    assert result.returncode == 0, (result.stdout + result.stderr).decode()
    assert not (result.stdout + result.stderr).strip(), (result.stdout + result.stderr).decode()


def test_listed_metrics_are_what_the_worker_exports() -> None:
    names = set(re.findall(rb"^(engagement_\w+)", exposition(), re.MULTILINE))
    assert {name.decode() for name in names} == EXPORTED


def test_rule_tests_cover_every_rule() -> None:
    tests = RULE_TESTS_FILE.read_text()
    for rule in load_rules():
        if "record" in rule:
            assert f"expr: {rule['record']}\n" in tests, f"no promql_expr_test for {rule['record']}"
        else:
            name = rule["alert"]
            assert f"alertname: {name}\n" in tests, f"no alert_rule_test for {name}"
            assert rule["labels"].get("severity") in {"critical", "warning", "info"}, name
            assert {"summary", "description", "runbook"} <= set(rule["annotations"]), name


def test_recording_rule_names() -> None:
    for rule in load_rules():
        if "record" in rule:
            name = rule["record"]
            # the older engagement:name:op form, or level:metric:operations
            ok = r"engagement:[a-z0-9_]+:[a-z0-9_]+|[a-z0-9_]+:engagement_[a-z0-9_]+:[a-z0-9_]+"
            assert re.fullmatch(ok, name), rule


def test_metric_names_cannot_drift() -> None:
    dashboard = load_dashboard()
    recorded = {rule["record"] for rule in load_rules() if "record" in rule}
    lag_metric = next(v for v in dashboard["templating"]["list"] if v["name"] == "lag_metric")
    lag_metrics = {option["value"] for option in lag_metric["options"]}
    allowed = EXPORTED | recorded | NOT_OURS | lag_metrics
    unknown = {
        (where, name)
        for where, expr in promql_expressions()
        for name in metric_names(expr)
        if name not in allowed
    }
    assert not unknown, f"unknown metric names: {sorted(unknown)}"
    # variables' queries too: label_values(metric, label)
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            metric = re.match(r"label_values\((\w+),", var["definition"])
            assert metric and metric.group(1) in EXPORTED, var["definition"]


def test_metric_names_parser() -> None:
    expr = (
        'sum by (job, le) (rate(a_total{x="b_c{"}[5m] offset 1d)) / on (job) group_left () '
        "(b:rec:ratio > 0) and up == 1 or vector(1e3) unless absent (c)"
    )
    assert metric_names(expr) == {"a_total", "b:rec:ratio", "up", "c"}


def uses_datasource_variable(node: dict[str, Any]) -> bool:
    return node.get("datasource") in ({"type": "prometheus", "uid": "${datasource}"}, "$datasource")


def test_dashboard_is_provisionable() -> None:
    raw = DASHBOARD_FILE.read_text()
    dashboard = load_dashboard()
    assert dashboard["uid"] == "engagement-stream"
    assert dashboard["id"] is None
    assert "__inputs" not in dashboard and "__requires" not in dashboard
    assert "${DS_" not in raw and "$DS_" not in raw
    variables = {var["name"]: var for var in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for var in variables.values():
        if var["type"] == "query":
            assert uses_datasource_variable(var), var["name"]


def test_every_panel_and_target_uses_the_datasource_variable() -> None:
    panels = list(iter_panels(load_dashboard()["panels"]))
    assert len(panels) > 10
    for panel in panels:
        assert uses_datasource_variable(panel), panel["title"]
        if panel["type"] != "row":
            assert panel["targets"], panel["title"]
        for target in panel.get("targets", []):
            assert uses_datasource_variable(target), (panel["title"], target["refId"])


def test_dashboard_ranges_use_rate_interval() -> None:
    for panel in iter_panels(load_dashboard()["panels"]):
        for target in panel.get("targets", []):
            ranges = re.findall(r"\[([^\]]*)\]", target["expr"])
            assert all(r == "$__rate_interval" for r in ranges), (panel["title"], target["expr"])
            if "rate(" in target["expr"]:
                assert ranges, (panel["title"], target["expr"])


def test_dashboard_variables() -> None:
    variables = {var["name"]: var for var in load_dashboard()["templating"]["list"]}
    channel = variables["channel"]
    assert channel["multi"] and channel["definition"] == (
        "label_values(engagement_retention_cohort_users, channel)"
    )
    assert variables["lag_metric"]["current"]["value"] == "kafka_consumergroup_lag"
    assert {o["value"] for o in variables["group_label"]["options"]} == {
        "group",
        "consumergroup",
        "group_id",
    }
    assert variables["consumer_group"]["type"] == "textbox"
    assert variables["consumer_group"]["query"] == "engagement-stream"
    lag = [e for w, e in promql_expressions() if "Consumer lag" in w]
    assert lag == ['sum by (topic) (kafka_consumergroup_lag{consumergroup=~"engagement-stream.*"})']


def test_expressions_are_substituted() -> None:
    expressions = promql_expressions()
    assert len(expressions) == len(load_rules()) + sum(
        len(p.get("targets", [])) for p in iter_panels(load_dashboard()["panels"])
    )
    for where, expr in expressions:
        assert "$" not in expr and "[[" not in expr, (where, expr)


def test_dashboard_shows_everything_asked_for() -> None:
    dashboard = load_dashboard()
    used = {
        name
        for panel in iter_panels(dashboard["panels"])
        for target in panel.get("targets", [])
        for name in metric_names(target["expr"])
    }
    assert {
        "engagement:active_users:sum",
        "engagement:stickiness:ratio",
        "engagement_lifecycle_users",
        "engagement_stage_users",
        "engagement:retention:ratio",
        "engagement:winback:ratio",
        "engagement_signals_emitted_total",
        "engagement_events_consumed_total",
        "engagement_events_valid_total",
        "engagement_events_invalid_total",
        "engagement_events_dead_lettered_total",
        "engagement_events_duplicate_total",
        "engagement_events_late_total",
        "engagement_event_lag_seconds_bucket",
        "engagement_delivery_retries_total",
        "engagement_snapshot_timestamp_seconds",
        "namespace_job_kind_arm_window:engagement_signal_return:ratio",
        "namespace_job_kind_window:engagement_signal_return_uplift:difference",
    } <= used
    days = {
        m
        for p in iter_panels(dashboard["panels"])
        for t in p.get("targets", [])
        for m in re.findall(r'day="(\d+)",period="last_complete"', t["expr"])
    }
    assert days == {"1", "7", "30"}
