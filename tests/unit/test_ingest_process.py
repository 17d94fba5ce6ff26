"""The pure parts of running ingest in its own process: the choice, its priority and the counter
mirror."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from prometheus_client import CollectorRegistry

from streams.worker.ingest_process import CounterMirror, counter_totals, own_process
from streams.worker.metrics import Metrics

EVENT_TYPES = ("session_start", "purchase")


def test_auto_takes_a_process_of_its_own_from_two_cpus_on() -> None:
    assert own_process("auto", cpus=2)
    assert own_process("auto", cpus=16)
    assert not own_process("auto", cpus=1)
    assert own_process("true", cpus=1)
    assert not own_process("false", cpus=16)


@pytest.mark.parametrize("niceness", [0, 3])
def test_lower_priority_raises_the_nice_value_by_the_setting(niceness: int) -> None:
    """In a child interpreter: the test process keeps its own priority."""
    code = (
        "import os; from streams.worker.ingest_process import lower_priority; "
        f"lower_priority({niceness}); print(os.nice(0))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert int(done.stdout) == min(19, os.nice(0) + niceness)  # Linux caps it at 19


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    assert value is not None, name
    return value


def test_the_mirror_adds_what_the_child_counted_since_its_last_report() -> None:
    child, parent = CollectorRegistry(), CollectorRegistry()
    child_metrics, parent_metrics = Metrics(child, EVENT_TYPES), Metrics(parent, EVENT_TYPES)
    mirror = CounterMirror(parent_metrics)
    parent_metrics.delivery_retries.labels("changelog").inc(2)  # the worker's own counting

    child_metrics.consumed.inc(5)
    child_metrics.count_valid("purchase", 3)
    child_metrics.invalid.labels("bad_json").inc()
    child_metrics.delivery_retries.labels("by_user").inc()
    mirror.apply(counter_totals([child]))
    child_metrics.consumed.inc(2)
    child_metrics.count_valid("unknown_type")  # counted as "other"
    mirror.apply(counter_totals([child]))
    mirror.apply(counter_totals([child]))  # the same totals again add nothing

    assert _value(parent, "engagement_events_consumed_total") == 7
    assert _value(parent, "engagement_events_valid_total", event_type="purchase") == 3
    assert _value(parent, "engagement_events_valid_total", event_type="other") == 1
    assert _value(parent, "engagement_events_invalid_total", reason="bad_json") == 1
    assert _value(parent, "engagement_delivery_retries_total", role="by_user") == 1
    assert _value(parent, "engagement_delivery_retries_total", role="changelog") == 2


def test_counter_totals_holds_only_counters() -> None:
    registry = CollectorRegistry()
    Metrics(registry, EVENT_TYPES).last_event.set(12)
    names = {name for name, _ in counter_totals([registry])}
    assert "engagement_last_event_timestamp_seconds" not in names
    assert "engagement_events_consumed" in names


def test_a_steps_report_holds_the_counters_a_step_moves() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry, EVENT_TYPES)
    metrics.consumed.inc(4)
    metrics.count_valid("purchase", 2)
    metrics.invalid.labels("bad_json").inc()
    metrics.dead_lettered.inc()
    metrics.delivery_retries.labels("by_user").inc()  # not a step's: the 250 ms report's
    step = counter_totals(metrics.ingest_counters())
    assert {name for name, _ in step} == {
        "engagement_events_consumed",
        "engagement_events_valid",
        "engagement_events_invalid",
        "engagement_events_dead_lettered",
    }
    whole = counter_totals([registry])
    assert step == {key: total for key, total in whole.items() if key in step}
