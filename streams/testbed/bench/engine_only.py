"""The engine alone, pure Python against compiled by mypyc: events/s and CPU per event.

``python -m streams.testbed.bench.engine_only [--events N --users U]`` folds the same simulated
events through an :class:`~agents.logic.engine.Engine` once per path, each in a subprocess of
its own (``ENGAGEMENT_PURE_PYTHON=1`` for the pure one), as the worker does: ``events.by_user``
rows (:class:`~schemas.records.Activity`; before 8e9b7e1, canonical events), batches cut in
arrival order and split by partition, then ``take_changes`` and ``mark_durable`` into in-memory
stores (so states are encoded, and decoded again on a user's next batch). No broker, no Faust.

The garbage collector is set as in the worker (:func:`~streams.worker.gc_tuning.tune_gc`),
after the events are built. Only the engine's calls are timed (CPU time of the process);
building the events is not. Each run hashes every signal and changelog record it produced: the
two paths must agree bit for bit.

Timed runs also print the work before and after the first signal (the batch that fires it
counts as before): CPU-s per 1M events, and per event the signals and the changelog records the
engine handed to the worker to deliver, user states apart from return counters. After the first
signal, deadlines fall due and signals are built, and each of those is a record the worker
produces and waits for, beyond the engine's own time.

``--behind-days D`` folds them as a wall-clock worker does that starts ``D`` days after the last
event (a first start on history, or a catch-up after an outage): every deadline and return lies
in the past, and the signals older than ``ENGAGEMENT_SIGNAL_MAX_AGE`` (2 days) are counted as
suppressed instead of delivered.

``--setting NAME=VALUE`` (repeatable) sets an ``ENGAGEMENT_*`` setting of the engine, say
``--setting ENGAGEMENT_DORMANT_AFTER=300d`` to move deadlines out of the data's reach; the
process environment is not read, so a stray variable cannot change a measurement.

``--instructions`` counts instead of timing: each path's child runs under valgrind
(``cachegrind``, no cache simulation) twice, once without the engine's calls, and the difference
is the instructions the engine executed, per event. The count does not depend on what else the
machine is doing (CPU seconds here vary by 10-20 % from run to run on a shared 2-core machine,
more than most single changes to the engine are worth), so two checkouts compare by running
this in each. Hash randomisation is off in these children (``PYTHONHASHSEED=0``): set and dict
orders, and so the counts, repeat. ``--only compiled`` skips the pure path (three times slower
under valgrind).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from typing import Any

import orjson

PURE_ENV = "ENGAGEMENT_PURE_PYTHON"
VALGRIND = ("valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null")


def _events(count: int, users: int) -> list[Any]:
    """The simulated events as the worker's engine gets them: ``events.by_user`` rows
    (:class:`~schemas.records.Activity`, what :func:`streams.worker.codecs.decode_record`
    returns), not the canonical :class:`~schemas.records.Event` the ingest reads."""
    from schemas.records import Activity, Event
    from streams.testbed.bench.data import simulated_events

    stream, _ = simulated_events(count, users)
    return [
        Activity.of(
            Event(
                e["event_id"],
                e["user_id"],
                e["event_type"],
                e["timestamp"],
                e.get("channel"),
                e.get("platform"),
                e.get("session_id"),
                e.get("properties"),
            )
        )
        for e in stream
    ]


def run(
    count: int,
    users: int,
    partitions: int,
    batch: int,
    behind_days: float | None = None,
    *,
    settings: dict[str, str] | None = None,
    engine_calls: bool = True,
    hashing: bool = True,
) -> dict[str, Any]:
    """Fold the events through one engine; the figures and a digest of what came out.
    ``engine_calls=False``: everything but the engine's calls (the instruction count's
    baseline); ``hashing=False``: no digest and no split at the first signal (neither is the
    engine's work, and the instruction count runs without them)."""
    import agents.logic
    from agents.logic.engine import Engine
    from agents.logic.partitioning import partition_for
    from streams.settings import Settings
    from streams.worker.engine_setup import engine_config

    events = _events(count, users)
    from streams.worker.gc_tuning import tune_gc

    clock = "event" if behind_days is None else "wall"
    config = engine_config(Settings.from_env({**(settings or {}), "ENGAGEMENT_CLOCK": clock}))
    # no ingest here: a wall clock's deadlines do not wait for an input frontier
    engine = Engine(dataclasses.replace(config, frontier=False))
    late_ms = None if behind_days is None else events[-1].timestamp_ms + round(behind_days * 864e5)
    tune_gc()  # as the worker and its ingest process do once start-up is done
    for number in range(partitions):
        engine.assign(number, {})
    keys = {e.user_id: partition_for(e.user_id.encode(), partitions) for e in events}
    digest, signals, suppressed, cpu = hashlib.sha256(), 0, 0, 0.0
    split = {"before": Phase(), "after": Phase()}  # the first signal's batch is "before"
    wall = time.perf_counter()
    for start in range(0, len(events), batch):
        chunk = events[start : start + batch]
        by_partition: dict[int, list[Any]] = {}
        for event in chunk:
            by_partition.setdefault(keys[event.user_id], []).append(event)
        wall_ms = chunk[-1].timestamp_ms if late_ms is None else late_ms
        if not engine_calls:
            continue
        began = time.process_time()
        outputs = [engine.process(n, evs, wall_ms) for n, evs in sorted(by_partition.items())]
        changes = engine.take_changes()
        engine.mark_durable(changes)
        spent = time.process_time() - began
        cpu += spent
        phase = split["after" if signals else "before"]
        for out in outputs:
            suppressed += sum(out.suppressed.values())
            signals += len(out.signals)
        if hashing:
            phase.add(len(chunk), spent, outputs, changes)
            _hash(digest, outputs, changes)
    return {
        "compiled": agents.logic.compiled(),
        "events": len(events),
        "signals": signals,
        "suppressed": suppressed,
        "wall_s": time.perf_counter() - wall,
        "cpu_s": cpu,
        "digest": digest.hexdigest() if hashing else "",
        "split": {name: dataclasses.asdict(phase) for name, phase in split.items()},
    }


@dataclasses.dataclass
class Phase:
    """The engine's work before or after its first signal: events, CPU, and what it gave the
    worker to deliver (signals; changelog records of user states and of return counters)."""

    events: int = 0
    cpu_s: float = 0.0
    signals: int = 0
    state_records: int = 0
    counter_records: int = 0

    def add(
        self,
        events: int,
        cpu_s: float,
        outputs: list[Any],
        changes: list[tuple[int, bytes, bytes | None]],
    ) -> None:
        from agents.logic.returns import is_counts_key

        counters = sum(1 for _, key, _ in changes if is_counts_key(key))
        self.signals += sum(len(out.signals) for out in outputs)
        self.events += events
        self.cpu_s += cpu_s
        self.counter_records += counters
        self.state_records += len(changes) - counters


def _hash(digest: Any, outputs: list[Any], changes: list[tuple[int, bytes, bytes | None]]) -> None:
    """Every signal and changelog record of a batch into ``digest``."""
    for out in outputs:
        for kind, key, signal in out.signals:
            digest.update(kind.encode() + key + orjson.dumps(signal, option=orjson.OPT_SORT_KEYS))
    for number, key, value in changes:
        digest.update(b"%d\0%s\0%s\0" % (number, key, value if value is not None else b"-"))


def _child(args: argparse.Namespace, pure: bool) -> dict[str, Any]:
    done = subprocess.run(
        _child_argv(args), env=_child_env(pure), stdout=subprocess.PIPE, text=True, check=True
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _instructions(args: argparse.Namespace, pure: bool) -> dict[str, Any]:
    """The child's figures, with ``instructions``: valgrind's count of a run without the digest,
    less that of the same run without the engine's calls."""
    measured = _child_argv(args, "--no-hash")
    return counted(measured, [*measured, "--no-engine"], _child_env(pure))


def counted(measured: list[str], baseline: list[str], env: dict[str, str]) -> dict[str, Any]:
    """The JSON figures ``measured`` prints, with ``instructions``: its count under valgrind
    less that of ``baseline`` (the same run without the calls measured), both with hash
    randomisation off so that set and dict orders, and so the counts, repeat."""
    env = {**env, "PYTHONHASHSEED": "0"}
    runs = [
        subprocess.run([*VALGRIND, *argv], env=env, capture_output=True, text=True, check=True)
        for argv in (measured, baseline)
    ]
    figures: dict[str, Any] = json.loads(runs[0].stdout)
    figures["instructions"] = instruction_count(runs[0].stderr) - instruction_count(runs[1].stderr)
    return figures


def instruction_count(report: str) -> int:
    """The total of valgrind's summary line ``==<pid>== I   refs:      5,330,675,751``."""
    found = re.findall(r"^==\d+== I\s+refs:\s+([\d,]+)\s*$", report, re.MULTILINE)
    if not found:
        raise RuntimeError(f"valgrind printed no instruction count: {report[-500:]!r}")
    return int(found[-1].replace(",", ""))


def _child_argv(args: argparse.Namespace, *extra: str) -> list[str]:
    module = "streams.testbed.bench.engine_only"
    return [sys.executable, "-m", module, "--child", *_sizes(args), *extra]


def _child_env(pure: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != PURE_ENV}
    if pure:
        env[PURE_ENV] = "1"
    return env


def _sizes(args: argparse.Namespace) -> list[str]:
    return [
        f"--events={args.events}",
        f"--users={args.users}",
        f"--partitions={args.partitions}",
        f"--batch={args.batch}",
        *([] if args.behind_days is None else [f"--behind-days={args.behind_days}"]),
        *(f"--setting={item}" for item in args.setting),
    ]


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.child:
        sizes = args.events, args.users, args.partitions, args.batch, args.behind_days
        settings = dict(item.partition("=")[::2] for item in args.setting)
        figures = run(
            *sizes, settings=settings, engine_calls=not args.no_engine, hashing=not args.no_hash
        )
        print(json.dumps(figures))
        return 0
    if args.instructions and shutil.which(VALGRIND[0]) is None:
        print("--instructions needs valgrind (apt-get install valgrind)")
        return 2
    measure = _instructions if args.instructions else _child
    paths = ("pure", "compiled") if args.only is None else (args.only,)
    results = {name: measure(args, pure=name == "pure") for name in paths}
    for name, r in results.items():
        print(f"{name:>8}: {_figures(r)}")
    if len(results) == 2:
        pure, fast = results["pure"], results["compiled"]
        unit = "instructions" if args.instructions else "cpu_s"
        what = "instructions" if args.instructions else "the CPU"
        print(
            f"   ratio: compiled uses {fast[unit] / pure[unit]:.2f}x {what} of pure Python "
            f"({pure[unit] / fast[unit]:.2f}x the events per unit)"
        )
    if "compiled" in results and not results["compiled"]["compiled"]:
        print("the compiled core is not in use (see the warning above): run `make compiled`")
        return 1
    if len({r["digest"] for r in results.values()}) > 1:
        print("the two paths produced DIFFERENT signals or states")
        return 1
    if not args.instructions and len(results) == 2:
        digest = results["pure"]["digest"]
        print(f"same signals and states on both paths (sha256 {digest[:16]}...)")
    return 0


def _figures(r: dict[str, Any]) -> str:
    counts = (
        f"({r['events']:,} events, {r['signals']:,} signals, {r['suppressed']:,} suppressed, "
        f"running compiled: {r['compiled']})"
    )
    if "instructions" in r:
        return f"{r['instructions'] / r['events']:>9,.0f} instructions per event  {counts}"
    return (
        f"{r['events'] / r['cpu_s']:>9,.0f} events/s  "
        f"{r['cpu_s'] / r['events'] * 1e6:6.2f} CPU-s per 1M events  {counts}\n"
        f"{'':10}{_split(r['split'])}"
    )


def _split(split: dict[str, dict[str, Any]]) -> str:
    """Before and after the first signal: CPU-s per 1M events, and per event the signals and
    changelog records (states + return counters) the worker has to deliver."""
    parts = []
    for name, p in split.items():
        n = max(p["events"], 1)
        parts.append(
            f"{name} the first signal {p['cpu_s'] / n * 1e6:.2f} CPU-s per 1M events "
            f"({p['events']:,} events; per event {p['signals'] / n:.3f} signals, "
            f"{p['state_records'] / n:.3f} + {p['counter_records'] / n:.3f} changelog records)"
        )
    return "; ".join(parts)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m streams.testbed.bench.engine_only")
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--batch", type=int, default=2_000, help="events per poll, all partitions")
    parser.add_argument(
        "--behind-days",
        type=float,
        default=None,
        help="fold on a wall clock this many days after the last event (default: event clock)",
    )
    parser.add_argument(
        "--setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an ENGAGEMENT_* setting of the engine (repeatable; the environment is not read)",
    )
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="count the engine's instructions under valgrind instead of timing it",
    )
    parser.add_argument("--only", choices=("pure", "compiled"), help="measure one path only")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--no-engine", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--no-hash", action="store_true", help=argparse.SUPPRESS)
    return parser


if __name__ == "__main__":
    sys.exit(main())
