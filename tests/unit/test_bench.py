"""engagement bench: the pure parts (figures, targets, report, parsers) without a broker."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from schemas.errors import BrokerError
from streams.settings import Settings
from streams.testbed.bench import profile
from streams.testbed.bench.cli import add_bench_parser
from streams.testbed.bench.data import quick_event
from streams.testbed.bench.live import WARM, Window, _returns, by_second
from streams.testbed.bench.measure import (
    cpu_by_process,
    filesystem_of,
    parse_cpuinfo,
    parse_meminfo_bytes,
    parse_stat_cpu,
    parse_stat_ppid,
    percent_of_a_core,
)
from streams.testbed.bench.naive import NaiveConfig, read_progress
from streams.testbed.bench.phases import stop_workers
from streams.testbed.bench.profile import finish_recording, frame_name, top_functions
from streams.testbed.bench.quix_state import Meter, fold_user, pinned_version
from streams.testbed.bench.raw import fold_batch, fold_config
from streams.testbed.bench.report import (
    SystemRun,
    build_report,
    evaluate_targets,
    percentile,
    render_markdown,
    summarize,
    write_report,
)
from streams.testbed.bench.run import start_kafka
from streams.testbed.bench.stages import (
    STAGES,
    Stamps,
    first_second_split,
    join_stamps,
    read_ready,
    split_stages,
)
from streams.testbed.processes import WorkerProcess


def test_percentile_interpolates_between_ranks() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert percentile(values, 0) == 1
    assert percentile(values, 100) == 100
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 99) == pytest.approx(99.01)
    assert percentile([7.0], 99) == 7.0
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0  # unsorted input


def test_percentile_rejects_nothing_and_bad_q() -> None:
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_summarize() -> None:
    assert summarize([]) == {"p50": None, "p99": None, "max": None, "samples": 0}
    summary = summarize([1.0, 2.0, 3.0, 4.0])
    assert summary["p50"] == 2.5
    assert summary["max"] == 4.0
    assert summary["samples"] == 4


def test_system_run_figures() -> None:
    run = SystemRun(events=2_000_000, wall_s=20.0, cpu_s=30.0)
    assert run.events_per_s == 100_000
    assert run.cpu_s_per_million_events == 15.0
    assert run.to_json()["events_per_s"] == 100_000.0
    assert SystemRun(0, 0.0, 0.0).events_per_s == 0.0


def _report(**overrides: Any) -> dict[str, Any]:
    figures: dict[str, Any] = {
        "created_utc": "20260101T000000Z",
        "machine": {"cpu": "Test CPU", "cores": 4},
        "dataset": {"events": 2_000_000, "users": 200_000},
        "systems": {
            "engagement": SystemRun(2_000_000, 20.0, 25.0),
            "raw_limit": SystemRun(2_000_000, 8.0, 8.0),
            "quix_state": SystemRun(2_000_000, 40.0, 50.0, note="quixstreams 3.28.1"),
            "naive_faust": SystemRun(100_000, 25.0, 25.0, extrapolated=True, note="prefix"),
        },
        "latency_ms": summarize([100.0, 200.0]),
        "deadline_delay_ms": summarize([150.0, 900.0]),
        "bytes_per_user": {"rss": 400.0, "disk": 120.0, "users": 1_000_000},
        "recovery_s": 42.0,
        "scale_out_2_workers_ratio": 1.5,
    }
    figures.update(overrides)
    return build_report(**figures)


def test_build_report_ratios_and_targets() -> None:
    report = _report()
    assert report["systems"]["engagement"]["events_per_s"] == 100_000.0
    assert report["ratios"]["engagement_vs_raw_limit"] == 0.4
    assert report["ratios"]["engagement_vs_naive"] == 25.0
    assert report["ratios"]["engagement_vs_quix_state"] == 2.0
    targets = report["targets"]
    assert targets["engagement_events_per_s"]["pass"] is True
    assert targets["vs_naive"]["pass"] is True
    assert targets["vs_raw_limit"] == {
        "target": ">= 0.60 of raw limit",
        "value": 0.4,
        "pass": False,
    }
    assert targets["vs_quix_state"]["pass"] is True
    assert targets["cpu_s_per_million_events"]["value"] == 12.5
    assert targets["cpu_s_per_million_events"]["pass"] is True
    assert targets["latency_p99_ms"]["pass"] is True
    assert targets["deadline_p99_ms"]["pass"] is True
    assert targets["disk_bytes_per_user"]["pass"] is True
    assert targets["recovery_s"]["pass"] is True
    assert targets["scale_out_2_workers"] == {"target": ">= 1.7x", "value": 1.5, "pass": False}
    orjson.dumps(report)  # JSON-serialisable as it is


def test_targets_not_measured_are_none() -> None:
    report = _report(
        deadline_delay_ms=None, bytes_per_user=None, recovery_s=None, scale_out_2_workers_ratio=None
    )
    targets = evaluate_targets(report)
    for name in ("deadline_p99_ms", "disk_bytes_per_user", "recovery_s", "scale_out_2_workers"):
        assert targets[name]["pass"] is None
        assert targets[name]["value"] is None


def test_missing_system_gives_no_ratio() -> None:
    report = _report(systems={"engagement": SystemRun(10, 1.0, 1.0), "naive_faust": None})
    assert report["ratios"] == {
        "engagement_vs_raw_limit": None,
        "engagement_vs_quix_state": None,
        "engagement_vs_naive": None,
        "one_process_vs_raw_limit": None,
        "one_process_vs_quix_state": None,
        "one_process_vs_naive": None,
    }
    assert report["systems"]["naive_faust"] is None
    assert "not run" in render_markdown(report)


def test_markdown_table() -> None:
    profile = {
        "tool": "py-spy",
        "samples": 10,
        "top_self": [
            {"function": "fold (agents/logic/fold.py)", "self_pct": 40.0, "total_pct": 50.0}
        ],
    }
    text = render_markdown(_report(profile=profile, notes=["a note"]))
    assert (
        "| engagement-stream (1 worker, full pipeline, ingest in its own process) | 100,000 | 12.5 "
        "| 2,000,000 |" in text
    )
    assert "extrapolated from a prefix; prefix" in text
    assert (
        "| Quix Streams with state (RocksDB + changelog: active days, last seen) | 50,000 | 25.0 "
        in text
    )
    assert "| engagement / Quix Streams with state | 2.00 |" in text
    assert "| scale_out_2_workers | >= 1.7x | 1.50 | FAIL |" in text
    assert "| recovery_s | <= 60 s | 42.00 | pass |" in text
    assert "| fold (agents/logic/fold.py) | 40.0 | 50.0 |" in text
    assert "Machine: cpu Test CPU, cores 4" in text
    assert "- a note" in text
    header = next(line for line in text.splitlines() if line.startswith("| system"))
    assert header.count("|") == 6


def test_a_profile_not_taken_is_reported_with_its_reason() -> None:
    """py-spy segfaulted once in the profile phase: the report keeps the measured phases and
    says why there is no profile."""
    text = render_markdown(_report(profile={"failed": "py-spy failed (-11): "}))
    assert "Profile of a full-pipeline run: not taken (py-spy failed (-11): )." in text
    assert "| engagement / Quix Streams with state | 2.00 |" in text


def test_write_report(tmp_path: Path) -> None:
    json_path, md_path = write_report(_report(), tmp_path / "results", "20260101T000000Z")
    assert json_path.name == "20260101T000000Z.json"
    assert orjson.loads(json_path.read_bytes())["dataset"]["users"] == 200_000
    assert md_path.read_text().startswith("# engagement-stream benchmark")


def test_proc_parsers() -> None:
    stat = "1234 (python (x) y) S 1 2 3 4 5 6 7 8 9 10 250 150 0 0 20 0 9"
    assert parse_stat_cpu(stat, ticks=100) == 4.0  # (250 + 150) / 100; ')' in the name
    assert parse_stat_ppid(stat) == 1
    cpuinfo = "processor\t: 0\nmodel name\t: Some CPU @ 3GHz\nflags\t: x\n"
    assert parse_cpuinfo(cpuinfo) == "Some CPU @ 3GHz"
    assert parse_cpuinfo("") is None
    assert parse_meminfo_bytes("MemTotal:       1024 kB\nMemFree: 1 kB\n") == 1024 * 1024


def test_cpu_shares_while_the_returns_are_sent() -> None:
    """The latency phase says whether its tail waits for a CPU: each process's share of a
    core over the window, and their total against the machine's cores."""
    before = {"worker": 1.0, "ingest_process": 0.5, "bench": 2.0, "kafka_broker": 10.0}
    after = {"worker": 3.5, "ingest_process": 1.5, "bench": 3.0, "kafka_broker": 14.0}
    shares = percent_of_a_core(before, after, 5.0)
    assert shares == {
        "worker": 50.0,
        "ingest_process": 20.0,
        "bench": 20.0,
        "kafka_broker": 80.0,
        "total": 170.0,
    }
    report = _report()
    report["latency_ms"]["cpu_percent_of_a_core"] = shares
    assert (
        "| CPU while the returns were sent, % of a core | Kafka broker 80.0 · worker 50.0 · "
        "its ingest process 20.0 · bench (producer, consumers) 20.0 · total 170.0 (of 400) |"
        in render_markdown(report)
    )
    assert "| CPU while the returns were sent, % of a core | — |" in render_markdown(_report())
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"]) as child:
        try:
            now = cpu_by_process(child.pid, None)  # no broker known: no broker figure
            assert set(now) == {"worker", "ingest_process", "bench"}
            assert now["bench"] > 0 and now["ingest_process"] == 0
        finally:
            child.kill()


def test_profile_top_functions() -> None:
    root = Path(__file__).resolve().parents[2]
    assert frame_name(f"fold ({root}/agents/logic/fold.py:115)") == "fold (agents/logic/fold.py)"
    site = "select (/x/.venv/lib/python3.11/site-packages/aiokafka/conn.py:12)"
    assert frame_name(site) == "select (aiokafka/conn.py)"
    collapsed = "\n".join(
        [
            "main (a.py:1);step (b.py:2);fold (c.py:3) 6",
            "main (a.py:1);step (b.py:9) 3",
            "main (a.py:1);step (b.py:2);fold (c.py:4) 1",
            "garbage",
        ]
    )
    top = top_functions(collapsed, limit=2)
    assert top["samples"] == 10
    assert top["top_self"][0] == {"function": "fold (c.py)", "self_pct": 70.0, "total_pct": 70.0}
    assert top["top_self"][1]["function"] == "step (b.py)"
    assert top["top_total"][0]["total_pct"] == 100.0
    assert top_functions("") == {"samples": 0, "top_self": [], "top_total": []}


def test_profile_per_process() -> None:
    """py-spy --subprocesses: a process frame per level; the child is the ingest process."""
    worker, child = 'process 7:"python -m streams.cli worker"', 'process 9:"python -c x"'
    collapsed = "\n".join(
        [
            f"{worker};main (a.py:1);fold (c.py:3) 6",
            f"{worker};{child};main (a.py:1);route (d.py:2) 3",
            f"{worker};{child};main (a.py:1);validate (e.py:2) 1",
        ]
    )
    top = top_functions(collapsed, limit=3)
    assert top["samples"] == 10 and top["top_self"][0]["function"] == "fold (c.py)"
    parts = top["processes"]
    assert parts["worker"]["samples"] == 6 and parts["worker"]["share_pct"] == 60.0
    assert parts["worker"]["top_self"] == [
        {"function": "fold (c.py)", "self_pct": 100.0, "total_pct": 100.0}
    ]
    ingest = parts["ingest child"]
    assert ingest["share_pct"] == 40.0
    assert [f["function"] for f in ingest["top_self"]] == ["route (d.py)", "validate (e.py)"]
    assert ingest["top_total"][0] == {
        "function": "main (a.py)",
        "total_pct": 100.0,
        "self_pct": 0.0,
    }


def test_profile_parts_of_the_pipeline() -> None:
    """Each sample is charged to the first part whose marker is on its stack: a deadline fired
    from within a batch's fold counts as deadlines; the ingest child has its own shares."""
    worker, child = 'process 7:"python -m streams.cli worker"', 'process 9:"python -c x"'
    engine, c = "CPyDef_engine___Engine", "(__native_engagement_logic.c:1)"
    on_events = f"{worker};on_events (/x/streams/worker/runtime.py:9);{engine}___process {c}"
    collapsed = "\n".join(
        [
            f"{on_events};{engine}____fold_user {c} 4",
            f"{on_events};{engine}____advance_partition {c};{engine}____fire_due {c} 2",
            f"{worker};run (/v/lib/python3.11/site-packages/faust/agents/agent.py:5) 1",
            f"{worker};write_all (/x/streams/worker/store.py:6);"
            "RdictPartition.write_all (/x/streams/worker/store.py:7) 1",
            f"{worker};_run_once (/usr/lib/python3.11/asyncio/base_events.py:8) 1",
            f"{worker};run (/v/lib/python3.11/site-packages/faust/agents/agent.py:5);"
            f"on_record ({Path(__file__).resolve().parents[2]}/streams/worker/runtime.py:3) 1",
            f"{worker};{child};step (/x/streams/worker/ingest.py:1);"
            "IngestService.step (/x/streams/worker/ingest.py:2) 1",
        ]
    )
    assert profile.shares_by_part(collapsed, "worker") == {
        "engine: fold of a batch's users": 40.0,
        "engine: deadlines due": 20.0,
        "Faust": 10.0,
        "RocksDB reads and writes": 10.0,
        "asyncio": 10.0,
        "worker runtime (streams/, agents/)": 10.0,  # under Faust's frames, not Faust's
    }
    top = top_functions(collapsed)
    assert top["parts"]["engine: fold of a batch's users"] == 36.4
    assert top["processes"]["ingest child"]["parts"] == {
        "ingest (decode, validate, route, produce)": 100.0
    }
    text = render_markdown(_report(profile=top))
    assert "| engine: deadlines due | 20.0 |" in text
    assert "| ingest (decode, validate, route, produce) | 100.0 |" in text


def test_profile_samples_the_gil_holder_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    """The throughput profile samples only the thread holding the GIL (its CPU): with
    ``--native`` alone, a thread waiting in a producer's flush counted as a third of it."""
    seen: list[list[str]] = []

    def popen(argv: list[str], **_: Any) -> Any:
        seen.append(argv)
        return None

    monkeypatch.setattr(subprocess, "Popen", popen)
    profile.start_recording(1, 2.0, Path("out"), native=True, gil=True)
    profile.start_recording(1, 2.0, Path("out"))
    assert "--gil" in seen[0] and "--native" in seen[0]
    assert "--gil" not in seen[1] and "--nonblocking" in seen[1]


def test_profile_names_compiled_functions_and_folds_c_helpers_into_their_caller() -> None:
    """py-spy --native: mypyc's functions get their Python names; the interpreter's C helpers
    below them count as their caller's own time."""
    worker = 'process 7:"python -m streams.cli worker"'
    collapsed = "\n".join(
        [
            f"{worker};on_events (/x/streams/worker/runtime.py:9);"
            "CPyPy_engine___Engine___process (__native_engagement_logic.c:1);"
            "CPyDef_engine___Engine___process (__native_engagement_logic.c:2);"
            "CPyDef_engine___Engine____fold_user (__native_engagement_logic.c:3);"
            "Py_DECREF (object.h:537) 3",
            f"{worker};on_events (/x/streams/worker/runtime.py:9);"
            "CPyDef_churn___risk_deadline_T (__native_engagement_logic.c:4);"
            "gc_collect_main (libpython3.11.so.1.0) 1",
        ]
    )
    top = top_functions(collapsed, limit=5)
    assert [f["function"] for f in top["top_self"]] == [
        "Engine._fold_user (agents/logic/engine.py, compiled)",
        "risk_deadline_T (agents/logic/churn.py, compiled)",
    ]
    assert frame_name("<module> (<string>:1)") == "<module> (<string>)"


def test_naive_config_and_progress(tmp_path: Path) -> None:
    config = NaiveConfig("127.0.0.1:9092", "in", "app", "/d", 8, str(tmp_path / "p"))
    assert NaiveConfig.from_env(config.env()) == config
    assert read_progress(tmp_path / "p") is None
    (tmp_path / "p").write_text("120 1700000000.500 3.250\n")
    assert read_progress(tmp_path / "p") == (120, 1700000000.5, 3.25)


class _Message:
    def __init__(self, value: bytes, error: Any = None) -> None:
        self._value, self._error = value, error

    def error(self) -> Any:
        return self._error

    def value(self) -> bytes:
        return self._value

    def headers(self) -> None:
        return None


def test_raw_fold_batch_folds_like_the_worker() -> None:
    from agents.logic.ingest import limits_from

    settings = Settings.from_env({})
    limits = limits_from(
        settings.max_message_bytes, settings.max_future_skew, settings.schema_versions
    )
    now = 1_760_000_000_000
    batch = [
        _Message(orjson.dumps(quick_event("u1", now - 86_400_000))),
        _Message(orjson.dumps(quick_event("u1", now))),
        _Message(orjson.dumps(quick_event("u2", now))),
        _Message(b"not json"),
        _Message(b"", error="EOF"),
    ]
    states: dict[str, Any] = {}
    assert fold_batch(batch, states, fold_config(settings), now, limits) == 4
    assert set(states) == {"u1", "u2"}
    assert states["u1"].active_days() == 2


def test_bench_parser_defaults() -> None:
    parser = argparse.ArgumentParser()
    add_bench_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["bench"])
    assert (args.events, args.users, args.users_large) == (2_000_000, 200_000, 1_000_000)
    assert not args.skip_large and not args.profile
    quick = parser.parse_args(["bench", "--events", "1000", "--users", "10", "--skip-large"])
    assert (quick.events, quick.users, quick.skip_large) == (1000, 10, True)
    assert args.quix_python == Path(".venv-quix/bin/python")
    assert args.kafka_data is None
    assert parser.parse_args(["bench", "--kafka-data", "/dev/shm"]).kafka_data == Path("/dev/shm")


def test_the_filesystem_of_a_path_is_that_of_its_deepest_mount_point() -> None:
    mounts = "/dev/vda / ext4 rw 0 0\ntmpfs /dev/shm tmpfs rw 0 0\nproc /proc proc rw 0 0\n"
    assert filesystem_of(Path("/dev/shm/kafka-1"), mounts) == "tmpfs"
    assert filesystem_of(Path("/dev/shm"), mounts) == "tmpfs"
    assert filesystem_of(Path("/dev/shmx"), mounts) == "ext4"
    assert filesystem_of(Path("/tmp/kafka"), mounts) == "ext4"
    assert filesystem_of(Path("/tmp"), "") is None


def test_latency_stages_split_the_mean_total() -> None:
    samples = [
        Stamps(0.0, 4.0, 10.0, 30.0, 70.0, 80.0),
        Stamps(100.0, 102.0, 120.0, 130.0, 190.0, 220.0),
    ]
    stages = split_stages(samples)
    assert list(stages) == list(STAGES)
    assert stages["kafka_append"]["mean"] == 3.0
    assert stages["ingest"]["mean"] == 12.0
    assert stages["by_user_fetch_and_fold"]["p50"] == 15.0
    assert stages["group_delivery"]["share"] == 0.5  # 50 of a mean total of 100
    assert sum(stage["share"] for stage in stages.values()) == pytest.approx(1.0)
    assert split_stages([])["ingest"] == {
        "p50": None, "p99": None, "max": None, "samples": 0, "mean": 0.0, "share": None,
    }  # fmt: skip


def test_latency_stages_join_only_users_seen_everywhere() -> None:
    sent = {"a": 1.0, "b": 2.0, "c": 3.0, "d": 4.0}
    acked = {"a": 1.004, "b": 2.004, "c": 3.004}
    ingested = {"a": 1010.0, "b": 2010.0, "d": 4010.0}
    signals = {"a": (1.1, 1020.0, 1050.0), "c": (3.1, 3020.0, 3050.0), "d": (4.1, 4020.0, 4050.0)}
    assert join_stamps(sent, acked, ingested, signals) == [
        Stamps(1000.0, 1004.0, 1010.0, 1020.0, 1050.0, 1100.0)
    ]


def test_latency_stages_take_the_ack_no_later_than_the_by_user_record() -> None:
    # the delivery report is served at the producer's next tick, which may come after ingest
    # already read the record: the append happened before that read
    stamps = join_stamps({"a": 1.0}, {"a": 1.012}, {"a": 1008.0}, {"a": (1.1, 1020.0, 1050.0)})
    assert stamps == [Stamps(1000.0, 1008.0, 1008.0, 1020.0, 1050.0, 1100.0)]
    assert split_stages(stamps)["ingest"]["p50"] == 0.0


def test_latency_stages_in_the_markdown() -> None:
    stamps = [Stamps(0, 4, 10, 30, 70, 80)]
    latency = {**summarize([100.0, 200.0]), "stages": split_stages(stamps)}
    text = render_markdown(_report(latency_ms=latency))
    assert (
        "| stage fold → signal record (group made durable), ms p50 / p99 | 40.0 / 40.0 (50 %"
        in text
    )
    assert "| stage produce → Kafka acknowledged (event producer, broker append), ms" in text


def test_latency_stages_split_the_first_second_from_the_rest() -> None:
    stamps = [
        Stamps(0, 400, 410, 430, 470, 480),  # produced first: 400 ms to its append
        Stamps(999, 1003, 1010, 1030, 1070, 1080),
        Stamps(1000, 1004, 1010, 1030, 1300, 1310),  # a second in: 270 ms in its group
    ]
    split = first_second_split(stamps)
    assert split["first_second"]["kafka_append"]["max"] == 400.0
    assert split["first_second"]["kafka_append"]["samples"] == 2
    assert split["after"]["group_delivery"]["p99"] == 270.0
    assert first_second_split([]) == {}
    latency = {**summarize([100.0]), "stages": split_stages(stamps), "stages_split": split}
    text = render_markdown(_report(latency_ms=latency))
    row = "| stage p99 in the first second of returns / after it, ms | append 396 / 4 · ingest"
    assert row in text


class _State:
    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def set(self, key: str, value: Any) -> None:
        self.values[key] = value


def test_quix_fold_keeps_active_days_and_last_seen() -> None:
    state = _State()
    day = 86_400_000
    for timestamp in (20 * day + 5, 20 * day + 1, 21 * day, 19 * day):
        fold_user({"timestamp": timestamp}, state)
    assert state.get("user") == {"days": [20, 21, 19], "last_seen": 21 * day}


def test_quix_meter_and_pins() -> None:
    meter = Meter(expect=2)
    assert meter.result() == {"events": 0, "wall_s": 0.0, "cpu_s": 0.0}
    assert meter.tick() is False
    assert meter.tick() is True
    result = meter.result()
    assert result["events"] == 2 and result["wall_s"] >= 0.0
    pins = "# comment\nquixstreams==3.28.1  # pinned\norjson==3.13.0\n"
    assert pinned_version(pins) == "3.28.1"
    assert pinned_version(pins, "rocksdict") is None
    root = Path(__file__).resolve().parents[2]
    assert pinned_version((root / "bench" / "quix-requirements.txt").read_text()) == "3.28.1"


def test_the_engine_only_bench_folds_on_the_path_in_use() -> None:
    from agents import logic
    from streams.testbed.bench.engine_only import run

    result = run(3_000, 300, partitions=4, batch=500)
    assert result["events"] == 3_000 and result["signals"] > 0 and result["cpu_s"] > 0
    assert result["compiled"] == logic.compiled()
    assert result["suppressed"] == 0  # event clock: a replay delivers what was fresh then


def test_the_engine_only_bench_splits_its_work_at_the_first_signal() -> None:
    """Before: the batches up to the one with the first signal; after: the rest, with the
    signals and the changelog records (user states, return counters) each gave the worker."""
    from streams.testbed.bench.engine_only import _split, run

    result = run(3_000, 300, partitions=4, batch=500)
    before, after = result["split"]["before"], result["split"]["after"]
    assert before["events"] + after["events"] == 3_000
    assert before["signals"] >= 1 and before["signals"] + after["signals"] == result["signals"]
    assert after["events"] > 0 and after["signals"] > 0 and after["counter_records"] > 0
    assert before["state_records"] > 0 and after["state_records"] > 0
    assert before["cpu_s"] + after["cpu_s"] == pytest.approx(result["cpu_s"])
    text = _split(result["split"])
    assert text.startswith("before the first signal ") and "; after the first signal " in text


def test_the_engine_only_bench_a_month_behind_the_wall_clock_suppresses_old_signals() -> None:
    """``--behind-days``: a wall-clock start 30 days after the events; the signals older than
    ENGAGEMENT_SIGNAL_MAX_AGE (2 days) are suppressed, not delivered."""
    from streams.testbed.bench.engine_only import run

    result = run(3_000, 300, partitions=4, batch=500, behind_days=30)
    assert result["events"] == 3_000 and result["suppressed"] > result["signals"]


def test_the_engine_only_bench_takes_settings_and_no_deadline_in_reach_fires_no_signal() -> None:
    from streams.testbed.bench.engine_only import run

    far = {
        "ENGAGEMENT_DORMANT_AFTER": "300d",
        "ENGAGEMENT_CHURNED_AFTER": "350d",
        "ENGAGEMENT_ALIVE_THRESHOLD": "0.000001",
    }
    result = run(3_000, 300, partitions=4, batch=500, settings=far)
    assert result["events"] == 3_000 and result["signals"] == 0 and result["suppressed"] == 0


def test_the_engine_only_bench_without_the_engine_calls_folds_nothing() -> None:
    """The instruction count's baseline: the same run less the engine's calls; and a run
    without the digest still counts what came out."""
    from streams.testbed.bench.engine_only import run

    base = run(3_000, 300, partitions=4, batch=500, engine_calls=False)
    assert base["signals"] == 0 and base["cpu_s"] == 0.0 and base["events"] == 3_000
    full = run(3_000, 300, partitions=4, batch=500)
    unhashed = run(3_000, 300, partitions=4, batch=500, hashing=False)
    assert unhashed["digest"] == "" and full["digest"]
    assert all(phase["events"] == 0 for phase in unhashed["split"].values())  # nor the split
    assert unhashed["signals"] == full["signals"] > 0


def test_the_instruction_count_is_read_off_valgrinds_summary() -> None:
    from streams.testbed.bench.engine_only import instruction_count

    report = (
        "==10057== Cachegrind, a cache and branch-prediction profiler\n"
        '{"events": 3}\n'
        "==10057== \n"
        "==10057== I   refs:      5,341,932,571\n"
    )
    assert instruction_count(report) == 5_341_932_571
    with pytest.raises(RuntimeError, match="no instruction count"):
        instruction_count("==1== Cachegrind\n")


def test_the_engine_only_bench_counts_the_engines_instructions_under_valgrind() -> None:
    """``--instructions``: valgrind (installed by ``make system-deps``) counts each run; the
    engine's share is the difference of two runs, the same within a thousandth when repeated
    (hash randomisation off)."""
    from streams.testbed.bench.engine_only import _instructions, _parser

    args = _parser().parse_args(["--events", "2000", "--users", "200", "--partitions", "2"])
    first, again = (_instructions(args, pure=False) for _ in range(2))
    assert first["events"] == 2_000 and first["signals"] == again["signals"]
    assert first["instructions"] > 2_000 * 1_000  # thousands of instructions per event
    assert abs(first["instructions"] - again["instructions"]) < first["instructions"] / 1_000


def test_latency_by_second_of_the_returns() -> None:
    samples = [(100.0, 600.0), (100.5, 400.0), (101.2, 90.0), (102.9, 120.0), (102.1, 80.0)]
    rows = by_second(samples)
    assert [(r["second"], r["samples"], r["max"]) for r in rows] == [
        (0, 2, 600.0),
        (1, 1, 90.0),
        (2, 2, 120.0),
    ]
    assert by_second([]) == []


def test_the_measured_returns_start_after_the_warm_up_and_open_the_window() -> None:
    """The profiler and the CPU reading start once, just before the first measured return."""
    made: list[str] = []
    starts: list[int] = []

    def start(window: Window) -> None:
        starts.append(len(made))
        window.sampler, window.cpu, window.began = "sampler", {"worker": 1.0}, 5.0

    window = Window()
    for event in _returns(2, 3, start, window):
        made.append(event["user_id"])
    assert made == [f"{WARM}0000000", f"{WARM}0000001", "lat0000000", "lat0000001", "lat0000002"]
    assert starts == [2]
    assert (window.sampler, window.cpu, window.began) == ("sampler", {"worker": 1.0}, 5.0)


class Queue:
    """A consumer's poll/consume over a list: poll waits for one record, consume takes more."""

    def __init__(self, records: list[str]) -> None:
        self.records = records
        self.calls: list[tuple[str, float]] = []

    def poll(self, timeout: float) -> str | None:
        self.calls.append(("poll", timeout))
        return self.records.pop(0) if self.records else None

    def consume(self, most: int, timeout: float) -> list[str]:
        self.calls.append(("consume", timeout))
        taken, self.records = self.records[:most], self.records[most:]
        return taken


def test_read_ready_waits_only_for_the_first_record() -> None:
    queue = Queue(["a", "b", "c"])
    assert read_ready(queue, 0.2, most=2) == ["a", "b"]  # type: ignore[arg-type]
    assert queue.calls == [("poll", 0.2), ("consume", 0)]
    empty = Queue([])
    assert read_ready(empty, 0.2) == []  # type: ignore[arg-type]
    assert empty.calls == [("poll", 0.2)]


def test_a_recording_that_hangs_is_killed_and_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """py-spy hung once past its duration: the bench must go on without the profile."""
    monkeypatch.setattr(profile, "FINISH_GRACE_S", 1.0)
    hung = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="did not finish within 1 s; killed"):
        finish_recording(hung, 0.0, tmp_path / "profile.txt")
    assert hung.returncode is not None and time.monotonic() - started < 10


def test_stopped_workers_lose_their_data_and_keep_their_logs(tmp_path: Path) -> None:
    """A failed bench says its work dir keeps the workers' logs: stopping a worker of a
    phase removes its data, not its log."""
    worker = WorkerProcess({}, workdir=tmp_path / "engagement-0", name="engagement-0")
    data = Path(worker.env["ENGAGEMENT_DATA_DIR"])
    (data / "state").mkdir(parents=True)
    worker.log_path.write_text("the worker's log\n")
    stop_workers([worker])
    assert not data.exists()
    assert worker.log_path.read_text() == "the worker's log\n"


def test_a_broker_that_does_not_start_leaves_no_folder_under_kafka_data(tmp_path: Path) -> None:
    """``--kafka-data DIR``: each attempt makes its own folder under DIR for the broker's data;
    one whose broker did not start is removed (here: no Kafka jars, so every attempt fails)."""
    parent = tmp_path / "kafka-data"
    parent.mkdir()
    with pytest.raises(BrokerError, match="no Apache Kafka jars"):
        start_kafka(tmp_path / "no-jars", parent, attempts=2)
    assert list(parent.iterdir()) == []
