"""Quix Streams with state: the per-user fold a Quix Streams user would write, on its defaults.

One ``quixstreams.Application`` on the input topic, RocksDB state with its changelog topic
(Quix's defaults: ``use_changelog_topics=True``, at-least-once, commit every 5 s): for each
event, decode (Quix's JSON deserializer), then fold it into the user's state, the set of active
days and the last time seen (:func:`fold_user`), one ``state.set`` per event. No validation, no
lifecycle, no aggregates, no signals: strictly less work than engagement-stream does.

Quix Streams lives in a virtual environment of its own (``make bench`` creates it from
``bench/quix-requirements.txt``) so that its pins never touch ours; this module runs there as
``python -m streams.testbed.bench.quix_state`` with the repository on ``PYTHONPATH`` and imports
nothing of ours but :mod:`~streams.testbed.bench.measure` (standard library only). Like the raw
limit it prints one JSON line: the clock and the CPU time (``/proc``, all threads) run from its
first message to its ``--expect``-th.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import Any, Protocol

from streams.testbed.bench.measure import cpu_seconds

DAY_MS = 86_400_000
STATE_KEY = "user"


def pinned_version(requirements: str, package: str = "quixstreams") -> str | None:
    """The version ``package`` is pinned to (``name==version``) in a requirements text."""
    for line in requirements.splitlines():
        name, sep, version = line.split("#", 1)[0].strip().partition("==")
        if sep and name.strip().lower() == package:
            return version.strip()
    return None


class State(Protocol):
    """What :func:`fold_user` needs of Quix's per-key ``State``."""

    def get(self, key: str, default: Any = None) -> Any: ...

    def set(self, key: str, value: Any) -> None: ...


def fold_user(event: dict[str, Any], state: State) -> None:
    """Fold one decoded event into its user's state: active days (UTC) and last seen (ms)."""
    timestamp = int(event["timestamp"])
    day = timestamp // DAY_MS
    user = state.get(STATE_KEY) or {"days": [], "last_seen": timestamp}
    if day not in user["days"]:
        user["days"].append(day)
    user["last_seen"] = max(user["last_seen"], timestamp)
    state.set(STATE_KEY, user)


class Meter:
    """Counts the events and freezes the clock and CPU time at the ``expect``-th one."""

    def __init__(self, expect: int) -> None:
        self.expect = expect
        self.events = 0
        self.first: tuple[float, float] | None = None
        self.last: tuple[float, float] | None = None

    def tick(self) -> bool:
        """Count one event; True once ``expect`` events are handled."""
        if self.first is None:
            self.first = (time.monotonic(), cpu_seconds(os.getpid()))
        self.events += 1
        if self.events == self.expect:
            self.last = (time.monotonic(), cpu_seconds(os.getpid()))
        return self.events >= self.expect

    def result(self) -> dict[str, Any]:
        if self.first is None:
            return {"events": 0, "wall_s": 0.0, "cpu_s": 0.0}
        last = self.last or (time.monotonic(), cpu_seconds(os.getpid()))
        wall, cpu = last[0] - self.first[0], last[1] - self.first[1]
        return {"events": self.events, "wall_s": wall, "cpu_s": cpu}


def run(args: argparse.Namespace) -> dict[str, Any]:  # pragma: no cover - needs quixstreams
    from quixstreams import Application

    app = Application(
        broker_address=args.bootstrap,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        state_dir=args.state_dir,
        loglevel="WARNING",
    )
    topic = app.topic(args.topic, key_deserializer="str", value_deserializer="json")
    meter = Meter(args.expect)

    def handle(event: dict[str, Any], state: State) -> None:
        fold_user(event, state)
        if meter.tick():
            app.stop()

    app.dataframe(topic).update(handle, stateful=True)
    app.run(timeout=args.idle_timeout)
    return meter.result()


def main(argv: Sequence[str] | None = None) -> int:  # pragma: no cover - the child process
    parser = argparse.ArgumentParser(prog="python -m streams.testbed.bench.quix_state")
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--expect", type=int, required=True)
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--idle-timeout", type=float, default=120.0)
    args = parser.parse_args(argv)
    result = run(args)
    sys.stdout.write(json.dumps(result) + "\n")
    return 0 if result["events"] >= args.expect else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
