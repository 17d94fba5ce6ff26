"""The rules, their promtool tests and the dashboard: valid, and naming only metrics that exist.

Needs ``promtool`` (Debian package ``prometheus``); without it these tests fail, never skip.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from agents.logic.aggregates import Snapshot
from agents.logic.funnel_counts import FunnelCounts
from agents.logic.funnels import ACTIVATION_FUNNEL, parse_funnels
from streams.worker.funnel_metrics import FunnelCollector
from streams.worker.metrics import (
    Metrics,
    Published,
    SnapshotCollector,
    register_process_collectors,
)
from tests.monitoring import (
    DASHBOARD_FILE,
    ROOT,
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
    "engagement_model_refits_total",
}
HISTOGRAM = "engagement_event_lag_seconds"
RETURN_HISTOGRAM = "engagement_signal_time_to_return_seconds"
FUNNEL_HISTOGRAM = "engagement_funnel_step_time_seconds"
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
    "engagement_funnel_reached_users",
    "engagement_funnel_converted_users",
    "engagement_model_parameter",
    "engagement_model_fit_users",
    "engagement_model_fit_log_likelihood",
    "engagement_model_fit_timestamp_seconds",
    "engagement_model_churn_risk_off",
    "engagement_model_calibration_users",
    "engagement_model_calibration_predicted_visits",
    "engagement_model_calibration_actual_visits",
    "engagement_model_churn_risk_eligible_users",
    "engagement_model_churn_risk_return_users",
}
EXPORTED = (
    COUNTERS
    | GAUGES
    | {
        f"{name}_{suffix}"
        for name in (HISTOGRAM, RETURN_HISTOGRAM, FUNNEL_HISTOGRAM)
        for suffix in ("bucket", "sum", "count")
    }
)
# the client library's process and runtime metrics, on the worker's registry too
PROCESS = {
    "process_cpu_seconds_total",
    "process_open_fds",
    "process_max_fds",
    "process_virtual_memory_bytes",
    "process_resident_memory_bytes",
    "process_start_time_seconds",
    "python_info",
    "python_gc_objects_collected_total",
    "python_gc_objects_uncollectable_total",
    "python_gc_collections_total",
}
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
    """What a worker exports: its counters, a (zero) snapshot's gauges, process and GC."""
    registry = CollectorRegistry()
    Metrics(registry, ["page_view"])
    register_process_collectors(registry)
    published = Published(Snapshot(), 0.0, 0, 0, 0.0)
    registry.register(SnapshotCollector(lambda: published, ["other", "organic"], [1, 7, 30]))
    counts = FunnelCounts()
    counts.reached[(0, 0, 1, 20_447)] = 5
    counts.reached[(0, 1, 1, 20_447)] = 2
    funnels = parse_funnels(ACTIVATION_FUNNEL)
    registry.register(FunnelCollector(lambda: counts, funnels, ["other", "organic"]))
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


def test_the_exposition_has_process_and_gc_metrics() -> None:
    names = set(re.findall(rb"^((?:process|python)_\w+)", exposition(), re.MULTILINE))
    assert {name.decode() for name in names} == PROCESS


def test_rule_tests_cover_every_rule() -> None:
    tests = RULE_TESTS_FILE.read_text()
    for rule in load_rules():
        if "record" in rule:
            assert f"expr: {rule['record']}\n" in tests, f"no promql_expr_test for {rule['record']}"
        else:
            name = rule["alert"]
            assert f"alertname: {name}\n" in tests, f"no alert_rule_test for {name}"
            assert rule["labels"].get("severity") in {"critical", "warning", "info"}, name
            assert set(rule["annotations"]) == {"summary", "description", "runbook_url"}, name


RECORDED = re.compile(r"(?P<level>[a-z_]+):(?P<metric>engagement_[a-z0-9_]+):(?P<ops>[a-z0-9_]+)")


def test_recording_rule_names_follow_level_metric_operations() -> None:
    """``level:metric:operations``: the labels kept (namespace goes with job), the exported
    metric (no ``_total``/``_bucket``; ``a_per_b`` for a ratio), the operations."""
    for rule in load_rules():
        if "record" not in rule:
            continue
        name, expr = rule["record"], str(rule["expr"])
        parts = RECORDED.fullmatch(name)
        assert parts, name
        by = re.search(r"\bby \(([^)]*)\)", expr)
        assert by, name
        kept = [label.strip() for label in by.group(1).split(",")]
        assert kept[:2] == ["namespace", "job"], name
        assert parts["level"] == "_".join(x for x in kept[1:] if x != "le"), name
        first = re.search(r"\bengagement_\w+", expr)
        assert first, name
        metric = re.sub(r"_(total|bucket)$", "", first.group())
        assert parts["metric"] == metric or parts["metric"].startswith(f"{metric}_"), name
        ratio = "/" in expr
        assert ratio == ("_per_" in parts["metric"]), name
        assert ratio == parts["ops"].startswith("ratio"), name
        window = re.search(r"\brate\([^\[]*\[(\w+)\]", expr)
        assert not window or parts["ops"].endswith(f"rate{window.group(1)}"), name


RUNBOOKS = "https://github.com/engagement-stream/engagement-stream/blob/main/README.md#"


def readme_anchors() -> set[str]:
    """GitHub's anchors for the README's headings."""
    headings = re.findall(r"^#+ (.+)$", (ROOT / "README.md").read_text(), re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_every_alert_links_its_runbook_in_the_readme() -> None:
    anchors = readme_anchors()
    for rule in load_rules():
        if "alert" in rule:
            url = rule["annotations"]["runbook_url"]
            assert url == f"{RUNBOOKS}{rule['alert'].lower()}", url
            assert url.removeprefix(RUNBOOKS) in anchors, f"no README section for {url}"


def test_readme_lists_every_recording_rule_and_alert() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("<!-- rules:start -->")[1].split("<!-- rules:end -->")[0]
    listed = set(re.findall(r"^\| `([\w:]+)` \|", section, re.MULTILINE))
    assert listed == {rule.get("record", rule.get("alert")) for rule in load_rules()}


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
            metric = re.match(r"label_values\((\w+)(?:\{[^}]*\})?,", var["definition"])
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
    names = [var["name"] for var in load_dashboard()["templating"]["list"]]
    variables = {var["name"]: var for var in load_dashboard()["templating"]["list"]}
    namespace, job = variables["namespace"], variables["job"]
    assert names.index("namespace") < names.index("job")  # job's values follow the namespace
    assert namespace["definition"] == "label_values(engagement_build_info, namespace)"
    assert job["definition"] == 'label_values(engagement_build_info{namespace=~"$namespace"}, job)'
    for var in (namespace, job):
        assert var["type"] == "query" and var["query"] == var["definition"]
        assert var["multi"] and var["includeAll"] and var["allValue"] == ".*"
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
        "engagement_active_users",
        "job:engagement_active_users_1d_per_30d:ratio",
        "engagement_lifecycle_users",
        "engagement_stage_users",
        "job_day_channel_period:engagement_retention_retained_users_per_cohort_users:ratio",
        "job_channel:engagement_winback_reactivated_users_per_lapsed_users:ratio",
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
        "engagement_partitions_owned",
        "engagement_users_tracked",
        "engagement_deadlines_pending",
        "job_kind_arm_window:engagement_signal_returned_users_per_eligible_users:ratio",
        "job_kind_window:engagement_signal_returned_users_per_eligible_users:ratio_uplift",
        "job_band:engagement_model_calibration_actual_visits_per_predicted_visits:ratio",
        "job_group_window:engagement_model_churn_risk_return_users_per_eligible_users:ratio",
        "engagement_model_parameter",
    } <= used
    days = {
        m
        for p in iter_panels(dashboard["panels"])
        for t in p.get("targets", [])
        for m in re.findall(r'day="(\d+)",period="last_complete"', t["expr"])
    }
    assert days == {"1", "7", "30"}


AGGREGATION = re.compile(
    r"\b(sum|min|max|avg|count|topk|bottomk|quantile)\s*(by\s*\(([^)]*)\))?\s*\("
)
SELECTOR = re.compile(r"\b([A-Za-z_:][\w:]*)\{([^}]*)\}")


def deployment_targets() -> Iterator[tuple[str, str]]:
    """(panel title, expr) of every target but the lag exporter's (its namespace and job are
    the exporter's, not the workers')."""
    for panel in iter_panels(load_dashboard()["panels"]):
        for target in panel.get("targets", []):
            if "${lag_metric}" not in target["expr"]:
                yield panel["title"], target["expr"]


def test_every_panel_filters_on_namespace_and_job() -> None:
    checked = 0
    for title, expr in deployment_targets():
        selectors = SELECTOR.findall(expr)
        assert selectors, (title, expr)
        for _, matchers in selectors:
            assert 'namespace=~"$namespace"' in matchers, (title, expr)
            assert 'job=~"$job"' in matchers, (title, expr)
        checked += 1
    assert checked > 20


def test_no_panel_adds_deployments_together() -> None:
    """With "All" jobs chosen each deployment stays a series of its own."""
    for title, expr in deployment_targets():
        for _, by, labels in AGGREGATION.findall(expr):
            kept = {label.strip() for label in labels.split(",")} if by else set()
            assert {"namespace", "job"} <= kept, (title, expr)


def test_panels_reading_recording_rules_say_so() -> None:
    """A recorded series is empty without the PrometheusRule: the panel's description says so."""
    recorded = {rule["record"] for rule in load_rules() if "record" in rule}
    readers = 0
    for panel in iter_panels(load_dashboard()["panels"]):
        used = {
            name
            for target in panel.get("targets", [])
            for name in metric_names(target["expr"])
            if ":" in name
        }
        assert used <= recorded, (panel["title"], used - recorded)
        if used:
            readers += 1
            description = panel.get("description", "")
            assert "PrometheusRule" in description, panel["title"]
            assert all(name in description for name in used), panel["title"]
    # stickiness, retention, win-back, return rate by arm, uplift, calibration, churn-risk
    # return rates, and the three funnel panels
    assert readers == 10
    assert "PrometheusRule" in load_dashboard()["description"]


def test_panels_do_not_share_an_axis_between_units() -> None:
    """Partitions are not users: the partition count has a panel of its own."""
    for panel in iter_panels(load_dashboard()["panels"]):
        names = {n for t in panel.get("targets", []) for n in metric_names(t["expr"])}
        if "engagement_partitions_owned" in names:
            assert names == {"engagement_partitions_owned"}, panel["title"]
            assert panel["fieldConfig"]["defaults"]["unit"] == "none"


def test_a_folded_record_sets_the_event_lag_and_the_newest_event_time() -> None:
    """``engagement_event_lag_seconds`` observes every folded record's wall - newest event
    time; ``engagement_last_event_timestamp_seconds`` only moves forward."""
    registry = CollectorRegistry()
    metrics = Metrics(registry, ["page_view"])
    metrics.observe_folded(newest_ms=5_000, wall_ms=6_000)
    metrics.observe_folded(newest_ms=3_000, wall_ms=7_000)  # older: the gauge stays
    metrics.observe_folded(newest_ms=9_000, wall_ms=8_000)  # ahead of the clock: lag 0
    value = registry.get_sample_value
    assert value("engagement_last_event_timestamp_seconds") == 9.0
    assert value("engagement_event_lag_seconds_count") == 3
    assert value("engagement_event_lag_seconds_sum") == 1.0 + 4.0 + 0.0
