"""The registry a worker serves on /metrics carries the process and GC metrics too."""

from __future__ import annotations

from prometheus_client import generate_latest

from tests.agents.conftest import MemorySink, make_worker


def test_worker_registry_exports_process_and_gc_metrics(sink: MemorySink) -> None:
    worker = make_worker(sink)
    registry = worker.registry
    assert (registry.get_sample_value("process_resident_memory_bytes") or 0) > 0
    assert (registry.get_sample_value("process_start_time_seconds") or 0) > 0
    assert registry.get_sample_value("python_gc_collections_total", {"generation": "0"}) is not None
    exposition = generate_latest(registry).decode()
    assert 'python_info{implementation="CPython"' in exposition
    assert "engagement_events_consumed_total 0.0" in exposition
