"""The naive baseline: a per-event Faust agent, as a Faust user would first write it.

One tiny Faust app: an agent on the input topic that, for every event, runs the same decode +
validation (:func:`agents.logic.ingest.ingest`) and fold as engagement-stream, and writes the
user's encoded state to a RocksDB-backed Faust table (``table[user_id] = encode(state)``, one
changelog record per event). No signals, no aggregates: strictly less work than the real thing.

Run as a child process (``python -m streams.testbed.bench.naive``), configured by ``BENCH_NAIVE_*``
variables. Every half second a timer rewrites the progress file with
``<events handled> <unix time> <own CPU seconds>`` so the parent can time a prefix of the input.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faust

from agents.logic.days import Calendar
from agents.logic.fold import FoldConfig, fold, new_state
from agents.logic.ingest import ingest
from agents.logic.state import decode, encode
from schemas.records import Event
from streams.settings import Settings
from streams.testbed.bench.measure import cpu_seconds
from streams.worker.ingest import ingest_limits

PREFIX = "BENCH_NAIVE_"


@dataclass(frozen=True, slots=True)
class NaiveConfig:
    bootstrap: str
    topic: str
    app_id: str
    data_dir: str
    partitions: int
    progress: str

    def env(self) -> dict[str, str]:
        """The ``BENCH_NAIVE_*`` variables describing this configuration."""
        return {
            f"{PREFIX}BOOTSTRAP": self.bootstrap,
            f"{PREFIX}TOPIC": self.topic,
            f"{PREFIX}APP_ID": self.app_id,
            f"{PREFIX}DATA_DIR": self.data_dir,
            f"{PREFIX}PARTITIONS": str(self.partitions),
            f"{PREFIX}PROGRESS": self.progress,
        }

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> NaiveConfig:
        def get(name: str) -> str:
            return environ[PREFIX + name]

        return cls(
            get("BOOTSTRAP"),
            get("TOPIC"),
            get("APP_ID"),
            get("DATA_DIR"),
            int(get("PARTITIONS")),
            get("PROGRESS"),
        )


def build_app(config: NaiveConfig) -> faust.App:
    settings = Settings.from_env({})
    calendar = Calendar(settings.timezone)
    fold_config = FoldConfig.build(
        calendar, settings.horizon_days, settings.channels, settings.categories
    )
    limits = ingest_limits(settings)
    app = faust.App(
        config.app_id,
        broker=f"kafka://{config.bootstrap}",
        store="rocksdb://",
        datadir=config.data_dir,
        autodiscover=False,
        web_enabled=False,
        topic_partitions=config.partitions,
        consumer_auto_offset_reset="earliest",
        value_serializer="raw",
    )
    source = app.topic(config.topic, key_type=bytes, value_type=bytes)
    table = app.Table("users", default=None, key_type=str, value_type=bytes)
    handled = [0]

    @app.agent(source)
    async def fold_events(stream: Any) -> None:
        async for value in stream:
            handled[0] += 1
            event = ingest(value, None, int(time.time() * 1000), limits)
            if not isinstance(event, Event):
                continue
            day = calendar.day_of(event.timestamp_ms)
            raw = table.get(event.user_id)
            if raw is None:
                state = new_state(event, day, fold_config)
            else:
                state = decode(raw)
                fold(state, event, day, fold_config)
            table[event.user_id] = encode(state)

    progress = Path(config.progress)

    @app.timer(0.5)  # type: ignore[untyped-decorator]
    async def report_progress() -> None:
        text = f"{handled[0]} {time.time():.3f} {cpu_seconds(os.getpid()):.3f}\n"
        progress.with_suffix(".tmp").write_text(text)
        progress.with_suffix(".tmp").replace(progress)

    return app


def read_progress(path: Path) -> tuple[int, float, float] | None:
    """(events handled, unix time, CPU seconds) from the progress file, if written yet."""
    try:
        fields = path.read_text().split()
    except OSError:
        return None
    if len(fields) != 3:
        return None
    return int(fields[0]), float(fields[1]), float(fields[2])


def main() -> None:  # pragma: no cover - runs as the child process
    config = NaiveConfig.from_env(os.environ)
    app = build_app(config)
    worker: Any = faust.Worker(app, loglevel="warning", quiet=True)
    worker.execute_from_commandline()


if __name__ == "__main__":  # pragma: no cover
    main()
