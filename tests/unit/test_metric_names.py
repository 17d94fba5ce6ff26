"""A scrape that asks for some names (``/metrics?name[]=...``) collects only the collectors of
those names: every collector of a worker's registry is named, and its names are what it yields."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

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

CHANNELS = ["other", "organic"]


def worker_registry(reads: list[str]) -> CollectorRegistry:
    """As the worker builds it (streams.worker.app), noting each read of a snapshot."""
    registry = CollectorRegistry(support_collectors_without_names=True)
    Metrics(registry, ["page_view"])
    register_process_collectors(registry)
    snapshot = Snapshot()
    snapshot.active["dau"] = 3
    published = Published(snapshot, 1.0, 2, 4, 5.0)
    counts = FunnelCounts()
    counts.reached[(0, 0, 1, 20_447)] = 5

    def read_snapshot() -> Published:
        reads.append("snapshot")
        return published

    def read_funnels() -> FunnelCounts:
        reads.append("funnels")
        return counts

    registry.register(SnapshotCollector(read_snapshot, CHANNELS, [1, 7]))
    funnels = parse_funnels(ACTIVATION_FUNNEL)
    registry.register(FunnelCollector(read_funnels, funnels, CHANNELS))
    return registry


def families(text: bytes) -> set[str]:
    return {family.name for family in text_string_to_metric_families(text.decode())}


def test_every_collector_is_named() -> None:
    registry = worker_registry([])
    assert not registry._collectors_without_names


def test_asking_for_counters_reads_no_snapshot() -> None:
    reads: list[str] = []
    registry = worker_registry(reads)
    reads.clear()  # registration describes each collector once
    text = generate_latest(registry.restricted_registry(["engagement_events_folded_total"]))
    assert families(text) == {"engagement_events_folded"}
    assert reads == []


def test_each_family_can_be_asked_for_by_name() -> None:
    reads: list[str] = []
    registry = worker_registry(reads)
    whole = families(generate_latest(registry))
    assert {"engagement_active_users", "engagement_funnel_reached_users", "python_info"} <= whole
    for name in whole:
        kind = next(f.type for f in registry.collect() if f.name == name)
        asked = f"{name}_total" if kind == "counter" else name
        asked = f"{name}_count" if kind == "histogram" else asked
        assert families(generate_latest(registry.restricted_registry([asked]))) == {name}, name
