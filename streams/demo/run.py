"""``engagement demo`` (what ``make demo`` runs): the whole product, live, in about a minute.

1. Starts the embedded Tansu broker (or uses ``--bootstrap``) and one worker on the event clock.
2. Plays a simulated population (:mod:`streams.tools.simulate`: channels that retain differently,
   habits, dropouts, win-backs) into the input topic, one event-time day per
   ``seconds / days`` of wall time, ending with one event per input partition.
3. Shows a live view about once a second (:mod:`streams.demo.view`; one line per simulated day
   when stdout is not a terminal): DAU/WAU/MAU and their trend, stages, the retention triangle
   filling in, and the latest signals with their reasons.
4. Waits until the worker has folded every event and its gauges are steady, rebuilds the same
   numbers from the state changelog and checks they equal the worker's ``/metrics``.
5. Writes the report folder (:mod:`streams.demo.page`), also after Ctrl-C, and stops the
   worker (SIGTERM) and the broker.

Exit status: 0 when every event was delivered and folded and the numbers agree; 1 otherwise;
130 after Ctrl-C.
"""

from __future__ import annotations

import sys
import threading
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from confluent_kafka import Producer

from agents.logic.days import Calendar
from agents.logic.funnels import ACTIVATION_FUNNEL
from schemas.errors import EngagementError
from streams.demo.check import compare, rebuild_from_changelog, retention_rows
from streams.demo.funnel import funnel_data, print_funnel
from streams.demo.model import model_data
from streams.demo.page import write_report
from streams.demo.quality import KINDS, print_model, print_quality, quality
from streams.demo.uplift import print_uplift, uplift_data
from streams.demo.view import (
    HOME_CLEAR,
    SERIES,
    Progress,
    Recorder,
    SignalFeed,
    render_frame,
    render_line,
)
from streams.kafka import producer_config
from streams.settings import Settings
from streams.testbed.brokers import TansuBroker, free_port
from streams.testbed.processes import WorkerProcess
from streams.tools.population import plan_users
from streams.tools.signals import SignalConsumer
from streams.tools.simulate import (
    DEFAULT_WINBACK_EFFECT,
    PublishStats,
    SimulationConfig,
    publish_simulation,
    simulate,
)

RETENTION_DAYS = (1, 7, 14, 30)
SETTLE_TIMEOUT_S = 90.0
#: gauges that follow the wall clock, so they never hold still on a settled worker
MOVING = ("engagement_snapshot_timestamp", "engagement_input_frontier_lag_seconds")
DEMO_HOLDOUT_SHARE = 0.2  # a larger holdout than the default 0.1: a clearer answer sooner
DEMO_ALIVE_THRESHOLD = 0.75


class WorkerDied(EngagementError):
    """The demo's worker exited on its own."""


@dataclass
class DemoRun:
    """The state of one demo run, shared by the publisher thread and the view."""

    config: SimulationConfig
    settings: Settings
    worker: WorkerProcess
    feed: SignalFeed
    out: TextIO
    seconds: float
    recorder: Recorder = field(init=False)
    stats: PublishStats = field(default_factory=PublishStats)
    day_index: int = 0
    stop: threading.Event = field(default_factory=threading.Event)
    began: float = field(default_factory=time.monotonic)
    final_text: str = ""
    final: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.calendar = Calendar(self.settings.timezone)
        self.recorder = Recorder(self.calendar.day_of)
        self.tty = self.out.isatty()

    # -- publishing ----------------------------------------------------------------------------
    def publish(self) -> None:
        producer = Producer(producer_config(self.settings))
        pace = self.seconds / self.config.days if self.seconds > 0 else None

        def on_day(day: int, stats: PublishStats) -> None:
            self.stats = stats  # the live counts, for the view
            self.day_index = day - self.config.first_day + 1

        self.stats = publish_simulation(
            simulate(self.config),
            producer,
            self.settings.input_topic,
            seconds_per_day=pace,
            stop=self.stop,
            on_day=on_day,
        )

    def progress(self) -> Progress:
        day = min(max(self.day_index, 1), self.config.days)
        return Progress(
            day=self.day_index,
            days=self.config.days,
            published=self.stats.published,
            elapsed_s=time.monotonic() - self.began,
            iso_day=Calendar.iso(self.config.first_day + day - 1),
        )

    # -- the live view -------------------------------------------------------------------------
    def refresh(self) -> dict[str, float]:
        """Read /metrics once, record it, and show it."""
        if not self.worker.running:
            raise WorkerDied(f"the worker stopped; its log ends with:\n{self.worker.log_tail(30)}")
        try:
            metrics = self.worker.metrics()
        except Exception:  # a slow answer: show the last numbers again
            return {}
        new_day = self.recorder.observe(metrics)
        if self.tty:
            frame = render_frame(self.recorder, self.feed, self.progress(), RETENTION_DAYS)
            body = frame.replace("\n", "\x1b[K\n")
            self.out.write("\x1b[H" + body + "\x1b[J")
            self.out.flush()
        elif new_day:
            followed = sum(self.feed.snapshot()[1].values())
            print(render_line(self.recorder, self.progress(), followed), file=self.out, flush=True)
        return metrics

    def play(self) -> None:
        """Publish on a thread, refreshing the view about once a second until it is done."""
        publisher = threading.Thread(target=self.publish, name="demo-publisher", daemon=True)
        if self.tty:
            self.out.write(HOME_CLEAR)
        publisher.start()
        try:
            while publisher.is_alive():
                self.refresh()
                publisher.join(1.0)
        finally:
            self.stop.set()
            publisher.join(30)

    def settle(self) -> bool:
        """Wait until every event is folded at the final watermark and the gauges hold still."""
        lateness_ms = int(self.settings.allowed_lateness * 1000)
        final_wm = (self.config.end_ms - 1 - lateness_ms) / 1000
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        previous: dict[str, float] = {}
        while time.monotonic() < deadline:
            time.sleep(1.2)
            metrics = self.refresh()
            done = (
                metrics.get("engagement_events_folded_total", -1) >= self.stats.published
                and metrics.get("engagement_watermark_timestamp_seconds", 0) >= final_wm
            )
            steady = {  # the product's numbers: process_* and python_* move all the time, and
                # so do the snapshot's time and the input frontier's lag behind the wall clock
                k: v
                for k, v in metrics.items()
                if k.startswith("engagement_") and not k.startswith(MOVING)
            }
            if done and steady == previous:
                _, body = self.worker.get("/metrics")
                self.final_text = body.decode()
                self.final = metrics
                self.recorder.observe(metrics)
                return True
            previous = steady if done else {}
        return False


def demo_env(bootstrap: str, config: SimulationConfig, unique_topics: bool) -> dict[str, str]:
    """The worker's settings: event clock, 4 partitions, short sessions, its own app id."""
    app_id = f"engagement-demo-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    env = {
        "ENGAGEMENT_BROKER": f"kafka://{bootstrap}",
        "ENGAGEMENT_CLOCK": "event",
        "ENGAGEMENT_APP_ID": app_id,
        "ENGAGEMENT_PARTITIONS": "4",
        "ENGAGEMENT_SESSION_TIMEOUT": "6s",
        "ENGAGEMENT_WEB_HOST": "127.0.0.1",
        "ENGAGEMENT_WEB_PORT": str(free_port()),
        "ENGAGEMENT_RETENTION_DAYS": ",".join(map(str, RETENTION_DAYS)),
        "ENGAGEMENT_CHANNELS": ",".join(c.name for c in config.channels),
        "ENGAGEMENT_TIMEZONE": "UTC",
        "ENGAGEMENT_HOLDOUT_SHARE": str(config.holdout_share),
        "ENGAGEMENT_HOLDOUT_SALT": config.holdout_salt,
        "ENGAGEMENT_LOG_LEVEL": "warning",
        "ENGAGEMENT_FUNNELS": ACTIVATION_FUNNEL,  # the simulator's onboarding
        # 60 simulated days pass in about a minute: refit about every 5 simulated days
        "ENGAGEMENT_MODEL_REFIT": "5s",
        # Fitted to this population, P(alive) falls to 0.5 some 10-15 days after a user's last
        # visit, after they went dormant (7 days); at 0.75 (one chance in four that they are
        # gone) about 5 days after it (README, "The live model")
        "ENGAGEMENT_ALIVE_THRESHOLD": str(DEMO_ALIVE_THRESHOLD),
    }
    if unique_topics:  # a shared cluster: topics of this run only
        env["ENGAGEMENT_TOPIC_PREFIX"] = app_id
        env["ENGAGEMENT_INPUT_TOPIC"] = f"{app_id}.user.events"
    return env


def run_demo(
    seconds: float = 60.0,
    users: int = 5_000,
    bootstrap: str | None = None,
    out: TextIO = sys.stdout,
    *,
    days: int = 60,
    seed: int = 7,
    report: str | Path | None = None,
) -> int:
    """The demo; returns the exit status (see the module docstring)."""
    config = SimulationConfig(
        users=users,
        days=days,
        seed=seed,
        close_partitions=4,
        winback_effect=DEFAULT_WINBACK_EFFECT,
        holdout_share=DEMO_HOLDOUT_SHARE,
        onboarding=True,
    )
    folder = Path(report or f"reports/demo-{datetime.now().strftime('%Y%m%d-%H%M%S')}")
    began = time.monotonic()
    with ExitStack() as stack:
        servers = bootstrap
        if servers is None:
            servers = stack.enter_context(TansuBroker(port=free_port())).bootstrap
            print(f"embedded Tansu broker at {servers}", file=out, flush=True)
        env = demo_env(servers, config, bootstrap is not None)
        settings = Settings.from_env(env)
        worker = stack.enter_context(WorkerProcess(env, name="demo-worker"))
        print(f"worker ready at {worker.base_url} (event clock)", file=out, flush=True)
        feed = SignalFeed(settings).start()
        stack.callback(feed.stop)
        run = DemoRun(config, settings, worker, feed, out, seconds)
        return _run(run, folder, began)
    return 1  # pragma: no cover  (ExitStack does not swallow exceptions)


def _run(run: DemoRun, folder: Path, began: float) -> int:
    agreement: list[dict[str, Any]] = []
    retention: dict[str, Any] = {"cohorts": [], "by_channel": []}
    interrupted = settled = False
    try:
        run.play()
        settled = run.settle()
        if settled:
            agreement, retention = _check(run)
    except KeyboardInterrupt:
        interrupted = True
        run.stop.set()
        print("\ninterrupted: writing the report and stopping", file=run.out, flush=True)
    except WorkerDied as exc:
        run.stop.set()
        print(f"\n{exc}", file=run.out, flush=True)
    data = report_data(run, agreement, retention, time.monotonic() - began, interrupted)
    if settled:
        data["quality"] = _quality(run)
    write_report(folder, data, run.final_text)
    print_uplift(run.final_text, run.out)
    print_funnel(data["funnel"], run.out)
    print_model(run.final, run.out)
    ok = _summary(run, data, settled, folder)
    if interrupted:
        return 130
    return 0 if ok else 1


def _check(run: DemoRun) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The changelog rebuild against /metrics; retried while the changelog catches up."""
    rows: list[dict[str, Any]] = []
    for _ in range(3):
        rebuilt = rebuild_from_changelog(run.settings)
        rows = compare(run.final, rebuilt, RETENTION_DAYS)
        if all(r["ok"] for r in rows):
            break
        time.sleep(2.0)
    return rows, retention_rows(rebuilt, run.config.days, Calendar.iso)


def _quality(run: DemoRun) -> list[dict[str, Any]]:
    """churn_risk and the plain N-days-inactive rule against the simulator's truth."""
    with SignalConsumer(run.settings, ("churn_risk", "dormant"), dedupe=True) as consumer:
        signals = list(consumer)
    cfg = run.config
    rows = [quality(kind, plan_users(cfg), signals, cfg.start_ms, cfg.days) for kind in KINDS]
    print_quality(rows, run.settings.dormant_after / 86_400, run.out)
    return [{**asdict(row), "precision": row.precision, "recall": row.recall} for row in rows]


def report_data(
    run: DemoRun,
    agreement: list[dict[str, Any]],
    retention: dict[str, Any],
    wall_seconds: float,
    interrupted: bool,
) -> dict[str, Any]:
    """Every number of the report, as plain JSON-able data."""
    rec, cfg = run.recorder, run.config
    final = {key: run.final.get(name, 0.0) for key, name in SERIES.items()}
    if not run.final:
        final = {key: rec.latest.get(key, 0.0) for key in SERIES}
    return {
        "config": {
            "users": cfg.users,
            "days": cfg.days,
            "seed": cfg.seed,
            "start": Calendar.iso(cfg.first_day),
            "seconds": run.seconds,
            "winback_share": cfg.winback_share,
            "winback_effect": cfg.winback_effect,
            "holdout_share": cfg.holdout_share,
            "channels": [_channel(c, cfg) for c in cfg.channels],
        },
        "wall_seconds": wall_seconds,
        "published": run.stats.published,
        "delivery_failures": run.stats.failed,
        "interrupted": interrupted,
        "today": Calendar.iso(rec.today) if rec.today is not None else None,
        "days": [Calendar.iso(day) for day in rec.days()],
        "series": {key: rec.column(key) for key in SERIES},
        "final": final,
        "signals_followed": run.feed.snapshot()[1],
        "agreement": agreement,
        "retention": retention,
        "uplift": uplift_data(run.final_text),
        "funnel": funnel_data(run.final_text, [_channel(c, cfg) for c in cfg.channels]),
        "model": model_data(run.final, run.settings.dormant_after / 86_400),
    }


def _channel(channel: Any, cfg: SimulationConfig) -> dict[str, Any]:
    total = sum(c.share for c in cfg.channels)
    return {**asdict(channel), "share": channel.share / total}


def _summary(run: DemoRun, data: dict[str, Any], settled: bool, folder: Path) -> bool:
    """Print the end: report numbers next to /metrics, the changelog check; True if all good."""
    out, final = run.out, data["final"]
    last = {key: values[-1] if values else 0.0 for key, values in data["series"].items()}
    same = settled and last == final
    print(f"\n{'final number':<36}{'/metrics':>10}{'report':>10}", file=out)
    for key, value in final.items():
        mark = "ok" if value == last[key] else "DIFFERENT"
        print(f"{key:<36}{value:>10,.0f}{last[key]:>10,.0f}  {mark}", file=out)
    print(f"\n{'rebuilt from the changelog':<36}{'/metrics':>10}{'changelog':>10}", file=out)
    for row in data["agreement"]:
        mark = "ok" if row["ok"] else "DIFFERENT"
        print(
            f"{row['name']:<36}{row['metrics']:>10,.0f}{row['changelog']:>10,.0f}  {mark}",
            file=out,
        )
    agree = bool(data["agreement"]) and all(r["ok"] for r in data["agreement"])
    delivered = run.stats.failed == 0
    print(
        f"\n{run.stats.published:,} events published ({run.stats.failed} failed), "
        f"settled: {settled}, report == /metrics: {same}, changelog == /metrics: {agree}",
        file=out,
    )
    print(f"report: {folder / 'index.html'}  ({data['wall_seconds']:.0f}s)", file=out, flush=True)
    funnel_ok = bool(data["funnel"]["ok"])
    print(f"weakest funnel step as the simulator made it: {funnel_ok}", file=out, flush=True)
    return settled and same and agree and delivered and funnel_ok
