"""Wall-clock phases: latency to a signal, deadline delay, memory and recovery at scale.

* latency: users are made dormant quickly (``ENGAGEMENT_DORMANT_AFTER=2s``), then their return
  events are produced at a steady rate; latency = time the reactivated signal is consumed here
  minus the time its event was produced (same clock, this process).
* large: ``users_large`` users are loaded with one event each, stamped 12 h ahead (accepted:
  ``ENGAGEMENT_MAX_FUTURE_SKEW=20h``), so they are tracked but none is due during the test; then
  ``deadline_users`` more users arrive at a steady rate with events stamped now, and the delay
  of their dormant signals is ``processed_at_ms - event_time_ms`` (event_time_ms is the
  deadline). Then RSS and the RocksDB bytes per user, and the time a fresh worker takes to
  recover every user from the changelog.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer, Producer

from streams.testbed.bench.data import consumer as make_consumer
from streams.testbed.bench.data import (
    create_topics,
    produce_all,
    producer,
    quick_event,
    quick_events,
    say,
)
from streams.testbed.bench.measure import cpu_by_process, dir_bytes, percent_of_a_core, rss_bytes
from streams.testbed.bench.phases import (
    Context,
    pid_of,
    processed,
    start_workers,
    stop_workers,
    wait_owned,
    wait_processed,
    worker_env,
)
from streams.testbed.bench.profile import finish_recording, start_recording, top_functions
from streams.testbed.bench.report import summarize
from streams.testbed.bench.stages import (
    ByUserStamps,
    first_second_split,
    join_stamps,
    read_ready,
    split_stages,
)

HOUR_MS = 3_600_000
TRACKED = "engagement_users_tracked"


def now_ms() -> int:
    return int(time.time() * 1000)


SETTLE_S = 2.0  # quiet time between the dormant burst and the returns
WARM_UP_S = 1.0  # returns of other users before the measured ones, at the same rate
WARM = "latw"  # the warm-up users' prefix (their signals pass the "lat" filters, not the figures)


def live_env(ctx: Context, phase: str, topic: str) -> dict[str, str]:
    return worker_env(
        ctx, phase, input_topic=topic, clock="wall", dormant_after="2s", churned_after="1h",
        max_future_skew="20h", tick_interval="100ms",
    )  # fmt: skip


def paced(
    client: Producer, topic: str, events: Iterator[dict[str, Any]], rate: float,
    wait: Callable[[float], None], *, tick: float = 0.005, acked: dict[str, float] | None = None,
) -> dict[str, float]:  # fmt: skip
    """Produce ``events`` at ``rate`` per second: every ``tick`` seconds the events due by then,
    and ``wait(seconds)`` (consuming) until the next tick; the produce time (unix seconds) per
    user. Waking per tick rather than per event (every 0.5 ms at 2,000 events/s) keeps this
    process from taking a core of the machine it measures. With ``acked``, the time each user's
    record was acknowledged by Kafka, as its delivery report is served (at every tick)."""
    sent: dict[str, float] = {}
    on_delivery = None if acked is None else _delivered_into(acked)
    started = time.monotonic()
    for index, event in enumerate(events):
        if (due := started + index / rate - time.monotonic()) > 0:
            client.poll(0)
            until = time.monotonic() + max(due, tick)
            while (left := until - time.monotonic()) > 0:
                wait(left)  # may return early (a record read): wait on until the tick ends
        client.produce(
            topic, orjson.dumps(event), event["user_id"].encode(), on_delivery=on_delivery
        )
        sent[event["user_id"]] = time.time()
    client.flush(30)
    return sent


def _delivered_into(acked: dict[str, float]) -> Callable[[Any, Any], None]:
    def delivered(err: Any, msg: Any) -> None:
        if err is None:
            acked.setdefault(msg.key().decode(), time.time())

    return delivered


@dataclass
class SignalLog:
    """Signals of some kinds, with the time each was consumed here."""

    client: Consumer
    kinds: set[str]
    prefix: str

    def __post_init__(self) -> None:
        self.seen: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}
        self.produced_ms: dict[tuple[str, str], float] = {}  # the signal records' timestamps

    def poll(self, timeout: float = 0.002) -> None:
        for msg in read_ready(self.client, timeout):
            if msg.error() is not None:
                continue
            signal = orjson.loads(msg.value() or b"{}")
            if not signal:
                continue
            if signal["kind"] in self.kinds and signal["user_id"].startswith(self.prefix):
                key = (signal["kind"], signal["user_id"])
                if key not in self.seen:
                    self.seen[key] = (time.time(), signal)
                    self.produced_ms[key] = float(msg.timestamp()[1])

    def count(self, kind: str) -> int:
        return sum(1 for k, _ in self.seen if k == kind)

    def wait(self, kind: str, expect: int, timeout: float, label: str) -> None:
        deadline, last_say = time.monotonic() + timeout, time.monotonic()
        while self.count(kind) < expect and time.monotonic() < deadline:
            self.poll(0.2)
            if time.monotonic() - last_say >= 5:
                say(f"  {label}: {self.count(kind):,} / {expect:,} {kind} signals")
                last_say = time.monotonic()


def signal_log(ctx: Context, phase: str, kinds: set[str], prefix: str) -> SignalLog:
    topics = [f"{ctx.name(phase)}.signals.{kind}" for kind in sorted(kinds)]
    client = make_consumer(ctx.bootstrap, f"{ctx.name(phase)}-bench", topics)
    return SignalLog(client, kinds, prefix)


@dataclass
class Window:
    """The measured returns' start: the profiler (if any) and each process's CPU so far."""

    sampler: Any = None
    cpu: dict[str, float] = field(default_factory=dict)
    began: float = 0.0


def _returns(
    warm: int, users: int, start: Callable[[Window], None], window: Window
) -> Iterator[dict[str, Any]]:
    """The warm-up users' returns, then the measured users' (``start`` fills ``window`` before
    the first of those is made, so it covers the measured returns only)."""
    for i in range(warm):
        yield quick_event(f"{WARM}{i:07d}", now_ms(), 1)
    start(window)
    for i in range(users):
        yield quick_event(f"lat{i:07d}", now_ms(), 1)


def measure_latency(ctx: Context, users: int, rate: float, profile: bool = False) -> dict[str, Any]:
    """Produce -> reactivated signal consumed, for ``users`` users returning at ``rate``/s
    after :data:`WARM_UP_S` of other users' returns at the same rate (not measured: the
    first second after a pause is the broker's disk's, README "The first second of the
    returns"); with ``profile``,
    the worker (and its ingest child) sampled while the measured returns arrive."""
    phase, topic = "latency", f"{ctx.name('latency')}-input"
    create_topics(ctx.bootstrap, [topic], ctx.partitions)
    say(f"latency: {users:,} users made dormant (2s), then returning at {rate:,.0f} events/s")
    workers = start_workers(ctx, phase, live_env(ctx, phase, topic), 1)
    pid, warm = pid_of(workers[0]), round(WARM_UP_S * rate)
    seconds, output = users / rate, ctx.workdir / "latency-profile.txt"

    def start(window: Window) -> None:
        window.sampler = start_recording(pid, seconds, output) if profile else None
        window.cpu = cpu_by_process(pid, ctx.broker_pid)
        window.began = time.monotonic()

    try:
        wait_owned(workers, ctx.partitions)
        log = signal_log(ctx, phase, {"dormant", "reactivated"}, "lat")
        by_user = ByUserStamps(
            ctx.bootstrap, f"{ctx.name(phase)}.events.by_user", f"{ctx.name(phase)}-stamps", "lat"
        )
        client = producer(ctx.bootstrap, **{"linger.ms": 0})
        produce_all(client, topic, quick_events(WARM, warm, now_ms))
        produce_all(client, topic, quick_events("lat", users, now_ms))
        log.wait("dormant", users + warm, 120, "latency")

        def poll(timeout: float) -> None:
            log.poll(timeout)
            by_user.poll()

        # Steady phase: the returns start once the dormant signals' group is durable and the
        # bench has read the load's by_user records, not into that burst's tail.
        by_user.since_ms = now_ms()  # the returns' event times are from now on
        settle = time.monotonic() + SETTLE_S
        while time.monotonic() < settle:
            poll(0.05)
        acked: dict[str, float] = {}
        window = Window()
        sent = paced(client, topic, _returns(warm, users, start, window), rate, poll, acked=acked)
        cpu = percent_of_a_core(
            window.cpu, cpu_by_process(pid, ctx.broker_pid), time.monotonic() - window.began
        )
        log.wait("reactivated", users + warm, 60, "latency")
        warmed = {user: at for user, at in sent.items() if user.startswith(WARM)}
        sent = {user: at for user, at in sent.items() if user not in warmed}
        by_user.drain(sent)
        profiled = _finish_profile(window.sampler, seconds, output)
    finally:
        stop_workers(workers)
    result = _latency_figures(log, by_user, sent, acked)
    result["warm_up"] = {"seconds": WARM_UP_S, **_consumed_after(log, warmed)}
    result["cpu_percent_of_a_core"] = cpu  # while the measured returns were sent
    if profiled is not None:
        result["profile"] = profiled
    log.client.close()
    by_user.close()
    result.update(
        rate_per_s=rate, users=users,
        measured="signal consumed by the bench minus event produced (same clock)",
    )  # fmt: skip
    say(f"latency: p50 {result['p50']} ms, p99 {result['p99']} ms ({result['samples']:,} signals)")
    return result


def _finish_profile(sampler: Any, seconds: float, output: Path) -> dict[str, Any] | None:
    """The profile's top functions, ``{"failed": why}``, or None without a profiler."""
    if sampler is None:
        return None
    try:
        text = finish_recording(sampler, seconds, output)
    except RuntimeError as exc:  # the latency figures stand without it
        say(f"latency profile: not taken: {exc}")
        return {"failed": str(exc)}
    return {
        **top_functions(text),
        "tool": "py-spy record --subprocesses --format raw --nonblocking",
        "seconds": round(seconds, 1),
    }


def _consumed_after(log: SignalLog, sent: dict[str, float]) -> dict[str, Any]:
    """Produce -> reactivated signal consumed for ``sent`` (user -> produce time)."""
    return summarize(
        [
            (log.seen[("reactivated", user)][0] - at) * 1000
            for user, at in sent.items()
            if ("reactivated", user) in log.seen
        ]
    )


def _latency_figures(
    log: SignalLog, by_user: ByUserStamps, sent: dict[str, float], acked: dict[str, float]
) -> dict[str, Any]:
    """End to end, produce -> processed_at_ms, and the split into stages."""
    end_to_end: list[tuple[float, float]] = []  # (produced at, ms to the signal)
    engine = []
    signals: dict[str, tuple[float, float, float]] = {}
    for (kind, user), (seen_at, signal) in log.seen.items():
        if kind == "reactivated" and user in sent:
            end_to_end.append((sent[user], (seen_at - sent[user]) * 1000))
            engine.append(signal["processed_at_ms"] - sent[user] * 1000)
            produced = log.produced_ms[(kind, user)]
            signals[user] = (seen_at, float(signal["processed_at_ms"]), produced)
    result: dict[str, Any] = summarize([ms for _, ms in end_to_end])
    result["by_second"] = by_second(end_to_end)
    first = min(sent.values(), default=0.0)
    result["after_first_second"] = summarize([ms for at, ms in end_to_end if at - first >= 1])
    result["processed_at"] = summarize(engine)
    stamps = join_stamps(sent, acked, by_user.stamp_ms, signals)
    result["stages"] = split_stages(stamps)
    result["stages_split"] = first_second_split(stamps)
    return result


def by_second(samples: list[tuple[float, float]]) -> list[dict[str, Any]]:
    """p50 / p99 / max of (produced at, ms) per second since the first was produced: where
    in the phase the slow ones are."""
    if not samples:
        return []
    first = min(at for at, _ in samples)
    seconds: dict[int, list[float]] = {}
    for at, ms in samples:
        seconds.setdefault(int(at - first), []).append(ms)
    return [{"second": n, **summarize(seconds[n])} for n in sorted(seconds)]


@dataclass
class LargeResult:
    deadline_delay_ms: dict[str, Any]
    bytes_per_user: dict[str, Any]
    recovery_s: float | None
    load_events_per_s: float


def measure_large(ctx: Context, users: int, deadline_users: int, rate: float) -> LargeResult:
    """Deadline delay, memory and recovery with ``users`` (+ ``deadline_users``) tracked."""
    phase, topic = "large", f"{ctx.name('large')}-input"
    create_topics(ctx.bootstrap, [topic], ctx.partitions)
    env = live_env(ctx, phase, topic)
    say(f"large: loading {users:,} users (one event each, deadlines 12h ahead)")
    workers = start_workers(ctx, phase, env, 1)
    try:
        wait_owned(workers, ctx.partitions)
        pid = pid_of(workers[0])
        rss_empty = rss_bytes(pid)
        ahead = lambda: now_ms() + 12 * HOUR_MS  # noqa: E731
        began = time.monotonic()
        produce_all(producer(ctx.bootstrap), topic, quick_events("big", users, ahead))
        wait_processed(workers, users, "large load")
        load_rate = users / (time.monotonic() - began)
        say(f"large: {users:,} users loaded ({load_rate:,.0f} events/s incl. producing)")
        delays = _deadline_delays(ctx, phase, topic, deadline_users, rate, worker=workers[0])
        tracked = processed(workers)
        rss = rss_bytes(pid)
    finally:
        stop_workers(workers, remove=False)
    data_dir = workers[0].workdir / "data"
    disk = dir_bytes(data_dir)
    per_user = {
        "users": tracked, "rss": round(rss / tracked, 1),
        "rss_growth": round((rss - rss_empty) / tracked, 1), "disk": round(disk / tracked, 1),
        "rss_bytes": rss, "disk_bytes": disk,
    }  # fmt: skip
    say(f"large: {per_user['rss']} RSS bytes/user, {per_user['disk']} disk bytes/user")
    stop_workers(workers)
    recovery = _recovery(ctx, phase, env, tracked)
    return LargeResult(delays, per_user, recovery, load_rate)


def _deadline_delays(
    ctx: Context, phase: str, topic: str, users: int, rate: float, *, worker: Any
) -> dict[str, Any]:
    say(f"large: {users:,} more users at {rate:,.0f}/s; their dormancy deadlines come 2s later")
    log = signal_log(ctx, phase, {"dormant"}, "dl")
    client = producer(ctx.bootstrap, **{"linger.ms": 0})
    paced(client, topic, quick_events("dl", users, now_ms), rate, log.poll)
    log.wait("dormant", users, 120, "large deadlines")
    log.client.close()
    delays = [
        float(signal["processed_at_ms"] - signal["event_time_ms"])
        for (_, _), (_, signal) in log.seen.items()
    ]
    result: dict[str, Any] = summarize(delays)
    result.update(tracked_users=processed([worker]), rate_per_s=rate, expected=users)
    say(f"large: deadline delay p50 {result['p50']} ms, p99 {result['p99']} ms")
    return result


def _recovery(ctx: Context, phase: str, env: dict[str, str], users: int) -> float | None:
    """A fresh worker (empty data dir, same app id): seconds from start to all partitions
    owned and ready."""
    say(f"recovery: fresh worker restoring {users:,} users from the changelog")
    began = time.monotonic()
    workers = start_workers(ctx, f"{phase}-recovery", env, 1)
    try:
        wait_owned(workers, ctx.partitions, timeout=900)
        took = time.monotonic() - began
        tracked = workers[0].metrics(TRACKED).get(TRACKED, 0.0)
    finally:
        stop_workers(workers)
    say(f"recovery: ready with all partitions after {took:.1f}s ({tracked:,.0f} users tracked)")
    if tracked < users:
        ctx.notes.append(f"recovery: only {tracked:,.0f} of {users:,} users tracked when ready")
    return took
