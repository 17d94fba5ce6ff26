"""Every ``engagement_*`` metric, declared in one place, on an injected registry.

Counters are bumped by the stages as they work; gauges derived from state come from
:class:`SnapshotCollector`, which reads a snapshot the worker refreshes on a timer, so a scrape
never scans the store. Labels are bounded and pre-initialised: channels and event types go
through an allowlist with ``other``; user ids never become labels.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from agents import logic
from agents.logic.aggregates import LIFECYCLE_STATUSES, WINDOWS, Snapshot
from agents.logic.engine import Engine
from agents.logic.engine_types import Output
from agents.logic.freshness import frontier_lag_ms
from agents.logic.funnel_counts import FunnelCounts
from agents.logic.ingest import Reason
from agents.logic.returns import RETURN_BUCKETS_S, WINDOW_DAYS
from agents.logic.state import Stage
from schemas.records import ARMS, SIGNAL_KINDS
from streams.worker.codecs import BatchReason
from streams.worker.model_metrics import ModelMetrics

disable_created_metrics()  # type: ignore[no-untyped-call]  # *_created series double the exposition and no dashboard uses them
SUPPRESSED_REASONS = ("max_age", "revoked")
LAG_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600, 21600, 86400)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("engagement-stream")
    except PackageNotFoundError:  # running from a source tree without installing
        return "0.0.0"


def register_process_collectors(registry: CollectorRegistry) -> None:
    """The client library's ``process_*`` (CPU, memory, file descriptors, start time),
    ``python_info`` and ``python_gc_*`` metrics of this process on ``registry``: the default
    registry has them, a custom one only when asked. A worker's ingest child process is not
    covered (its counters are mirrored into the worker's, its process metrics are not)."""
    aside = CollectorRegistry()  # the GC collector insists on registering itself somewhere
    process, platform = ProcessCollector(registry=None), PlatformCollector(registry=None)
    for collector in (process, platform, GCCollector(registry=aside)):
        registry.register(Described(collector))


def described(families: Iterable[Metric]) -> list[Metric]:
    """``families`` without their samples: what a collector's ``describe`` answers."""
    return [Metric(family.name, family.documentation, family.type) for family in families]


class Described(Collector):
    """One of the client library's collectors, named at registration from what it collects.

    A collector without names is collected by every scrape, also by one that asks for other
    names (``/metrics?name[]=...``, as the bench polls its counters); one with names only by
    a scrape that asks for them."""

    def __init__(self, inner: Collector) -> None:
        self._inner = inner
        self._described = described(inner.collect())

    def describe(self) -> list[Metric]:
        return self._described

    def collect(self) -> Iterable[Metric]:
        return self._inner.collect()


class Metrics:
    """The worker's and tools' counters and histograms."""

    def __init__(self, registry: CollectorRegistry, event_types: Sequence[str]) -> None:
        self.registry = registry
        self.event_types = frozenset(event_types)
        self._newest_ms = 0  # the newest event time folded (engagement_last_event_timestamp)
        self.build_info = Gauge(
            "engagement_build_info",
            "Build information; value is 1. logic: how agents.logic runs, compiled (by mypyc) "
            "or python.",
            ["version", "logic"],
            registry=registry,
        )
        self.build_info.labels(_version(), "compiled" if logic.compiled() else "python").set(1)
        self.consumed = Counter(
            "engagement_events_consumed", "Input messages read by ingest.", registry=registry
        )
        self.valid = Counter(
            "engagement_events_valid",
            "Input messages that became canonical events, by event type (allowlist + other).",
            ["event_type"],
            registry=registry,
        )
        self.invalid = Counter(
            "engagement_events_invalid",
            "Input messages rejected, by reason.",
            ["reason"],
            registry=registry,
        )
        self.dead_lettered = Counter(
            "engagement_events_dead_lettered",
            "Rejected messages delivered to the dead-letter topic.",
            registry=registry,
        )
        self.quarantined = Counter(
            "engagement_records_quarantined",
            "events.by_user records the activity stage could not read, sent unfolded to the "
            "quarantine topic, by reason.",
            ["reason"],
            registry=registry,
        )
        self.duplicate = Counter(
            "engagement_events_duplicate",
            "Events whose event_id was seen recently for the same user; they count nowhere else.",
            registry=registry,
        )
        self.late = Counter(
            "engagement_events_late",
            "Events older than the clock's watermark when folded (still counted in their own day).",
            registry=registry,
        )
        self.folded = Counter(
            "engagement_events_folded", "Events folded into user state.", registry=registry
        )
        self.signals = Counter(
            "engagement_signals_emitted", "Signals delivered, by kind.", ["kind"], registry=registry
        )
        self.suppressed = Counter(
            "engagement_signals_suppressed",
            "Signals decided but not delivered, by kind and reason (max_age: the trigger is "
            "older than ENGAGEMENT_SIGNAL_MAX_AGE, the user's state advanced as if delivered; "
            "revoked: the worker stalled and lost the partition before delivering).",
            ["kind", "reason"],
            registry=registry,
        )
        self.delivery_retries = Counter(
            "engagement_delivery_retries",
            "Deliveries retried because Kafka refused or timed out, by topic role.",
            ["role"],
            registry=registry,
        )
        self.lag = Histogram(
            "engagement_event_lag_seconds",
            "Processing time minus event time when an event is folded.",
            buckets=LAG_BUCKETS,
            registry=registry,
        )
        self.last_event = Gauge(
            "engagement_last_event_timestamp_seconds",
            "Newest event time folded by this worker.",
            registry=registry,
        )
        for reason in Reason:
            self.invalid.labels(reason.value)
        for batch_reason in BatchReason:
            self.quarantined.labels(batch_reason.value)
        for event_type in (*sorted(self.event_types), "other"):
            self.valid.labels(event_type)
        for kind in SIGNAL_KINDS:
            self.signals.labels(kind)
            for why in SUPPRESSED_REASONS:
                self.suppressed.labels(kind, why)
        for role in ("by_user", "dead_letter", "changelog", "signals"):
            self.delivery_retries.labels(role)
        self.model = ModelMetrics(registry)

    def observe_folded(self, newest_ms: int, wall_ms: int) -> None:
        """The event lag and the newest event time of a folded record."""
        self.lag.observe(max(0.0, (wall_ms - newest_ms) / 1000))
        if newest_ms > self._newest_ms:
            self._newest_ms = newest_ms
            self.last_event.set(newest_ms / 1000)

    def ingest_counters(self) -> tuple[Counter, ...]:
        """The counters an ingest step moves (``IngestService._count``): what the ingest
        process reports to the worker after each step, ahead of its batches."""
        return self.consumed, self.valid, self.invalid, self.dead_lettered

    def count_valid(self, event_type: str, n: int = 1) -> None:
        self.valid.labels(event_type if event_type in self.event_types else "other").inc(n)

    def count_output(self, out: Output) -> None:
        """The folded, duplicate, late and suppressed counts of one engine step."""
        if out.events:
            self.folded.inc(out.events - out.duplicates)
        if out.duplicates:
            self.duplicate.inc(out.duplicates)
        if out.late:
            self.late.inc(out.late)
        for kind, n in out.suppressed.items():
            self.suppressed.labels(kind, "max_age").inc(n)


@dataclass(frozen=True, slots=True)
class Published:
    """What the collector exports; replaced wholesale by the worker's snapshot timer."""

    snapshot: Snapshot
    taken_at_s: float
    partitions: int
    pending_deadlines: int
    watermark_s: float
    frontier_lag_s: float = 0.0
    funnels: FunnelCounts | None = None  # with ENGAGEMENT_FUNNELS (streams.worker.funnel_metrics)


def published_of(engine: Engine, wall_ms: int, funnels: bool) -> Published:
    """The engine's gauges at ``wall_ms`` (``funnels``: with the funnel gauges)."""
    partitions = engine.partitions.values()
    return Published(
        snapshot=engine.snapshot(wall_ms)[0],
        taken_at_s=wall_ms / 1000,
        partitions=len(partitions),
        pending_deadlines=sum(len(p.index) for p in partitions),
        watermark_s=engine.now_ms(wall_ms) / 1000,
        frontier_lag_s=frontier_lag_ms((p.meta.frontiers for p in partitions), wall_ms) / 1000,
        funnels=engine.funnel_snapshot(wall_ms) if funnels else None,
    )


class SnapshotCollector(Collector):
    """State-derived gauges from the latest :class:`Published` snapshot."""

    def __init__(
        self,
        read: Callable[[], Published | None],
        channels: Sequence[str],
        retention_days: Sequence[int],
    ) -> None:
        self._read = read
        self._channels = list(channels)  # index 0 is "other"
        self._retention_days = tuple(retention_days)

    def describe(self) -> list[Metric]:
        """Its families (values appear once the first snapshot is taken)."""
        return described(self._families(Published(Snapshot(), 0.0, 0, 0, 0.0)))

    def collect(self) -> Iterator[Metric]:
        published = self._read()
        if published is not None:
            yield from self._families(published)

    def _families(self, published: Published) -> Iterator[Metric]:
        snap = published.snapshot
        yield _family(
            "engagement_active_users",
            "Distinct users active in the window ending today (calendar days, event time).",
            ["window"],
            [((name,), snap.active[name]) for name, _ in WINDOWS],
        )
        yield _family(
            "engagement_lifecycle_users",
            "Today's lifecycle counts (PostHog semantics).",
            ["status"],
            [((status,), snap.lifecycle[status]) for status in LIFECYCLE_STATUSES],
        )
        yield _family(
            "engagement_stage_users",
            "Tracked users per stage.",
            ["stage"],
            [((stage.label,), snap.stages[stage]) for stage in Stage],
        )
        yield _family(
            "engagement_users_tracked",
            "Users with state on this worker.",
            [],
            [((), sum(snap.stages.values()))],
        )
        yield from self._retention(snap)
        yield _family(
            "engagement_winback_lapsed_users",
            "Users dormant or churned at the start of today, by channel.",
            ["channel"],
            [((ch,), snap.winback_lapsed[i]) for i, ch in enumerate(self._channels)],
        )
        yield _family(
            "engagement_winback_reactivated_users",
            "Users reactivated today, by channel.",
            ["channel"],
            [((ch,), snap.winback_reactivated[i]) for i, ch in enumerate(self._channels)],
        )
        yield from self._returns(snap)
        yield _family(
            "engagement_partitions_owned",
            "State partitions this worker owns.",
            [],
            [((), published.partitions)],
        )
        yield _family(
            "engagement_deadlines_pending",
            "Entries in the deadline index.",
            [],
            [((), published.pending_deadlines)],
        )
        yield _family(
            "engagement_watermark_timestamp_seconds",
            "The clock's now (event clock: the watermark).",
            [],
            [((), published.watermark_s)],
        )
        yield _family(
            "engagement_input_frontier_lag_seconds",
            "Wall time minus the input frontier (the wall time up to which all input has been "
            "read), the largest over the owned partitions: how far wall-clock deadlines are held "
            "back while input waits unread.",
            [],
            [((), published.frontier_lag_s)],
        )
        yield _family(
            "engagement_snapshot_timestamp_seconds",
            "When these gauges were computed.",
            [],
            [((), published.taken_at_s)],
        )

    def _retention(self, snap: Snapshot) -> Iterator[Metric]:
        keys = [
            (n, i, ch, period)
            for n in self._retention_days
            for i, ch in enumerate(self._channels)
            for period in ("last_complete", "today")
        ]
        for name, counter, doc in (
            (
                "engagement_retention_cohort_users",
                snap.cohort,
                "Users of the cohort whose day N is the period's day (denominator).",
            ),
            (
                "engagement_retention_retained_users",
                snap.retained,
                "Of those, users active on day N (numerator).",
            ),
            (
                "engagement_retention_retained_on_or_after_users",
                snap.retained_after,
                "Of those, users active on day N or later (unbounded numerator).",
            ),
        ):
            yield _family(
                name,
                doc,
                ["day", "channel", "period"],
                [((str(n), ch, period), counter[(n, i, period)]) for n, i, ch, period in keys],
            )

    def _returns(self, snap: Snapshot) -> Iterator[Metric]:
        """Return rates by holdout arm (agents.logic.returns); ratios are recording rules."""
        groups = [
            (k, kind, a, arm, c, ch)
            for k, kind in enumerate(SIGNAL_KINDS)
            for a, arm in enumerate(ARMS)
            for c, ch in enumerate(self._channels)
        ]
        yield _family(
            "engagement_signal_users",
            "Signals delivered, by kind, holdout arm and channel (one per signal: a user "
            "signalled twice counts twice).",
            ["kind", "arm", "channel"],
            [
                ((kind, arm, ch), snap.return_signalled[(k, a, c)])
                for k, kind, a, arm, c, ch in groups
            ],
        )
        windowed = [(g, f"{n}d", w) for g in groups for w, n in enumerate(WINDOW_DAYS)]
        yield _family(
            "engagement_signal_return_eligible_users",
            "Signals whose return window has closed (signal day + N < today): the denominator "
            "of the return rate within N days.",
            ["kind", "arm", "channel", "window"],
            [
                ((kind, arm, ch, window), snap.return_eligible[(k, a, c, w)])
                for (k, kind, a, arm, c, ch), window, w in windowed
            ],
        )
        yield _family(
            "engagement_signal_returned_users",
            "Of those, signals whose user had an event within N days after the signal (numerator).",
            ["kind", "arm", "channel", "window"],
            [
                ((kind, arm, ch, window), snap.return_returned[(k, a, c, w)])
                for (k, kind, a, arm, c, ch), window, w in windowed
            ],
        )
        family = HistogramMetricFamily(
            "engagement_signal_time_to_return_seconds",
            "Event time from a signal to the user's next event, by kind and arm.",
            labels=["kind", "arm"],
        )
        for k, kind in enumerate(SIGNAL_KINDS):
            for a, arm in enumerate(ARMS):
                total, buckets = 0.0, []
                for i, bound in enumerate((*RETURN_BUCKETS_S, float("inf"))):
                    total += snap.return_buckets[(k, a, i)]
                    buckets.append(
                        (str(float(bound)) if i < len(RETURN_BUCKETS_S) else "+Inf", total)
                    )
                family.add_metric([kind, arm], buckets, snap.return_sum_ms[(k, a)] / 1000)
        yield family


def _family(
    name: str, doc: str, labels: list[str], samples: list[tuple[tuple[str, ...], float]]
) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=labels)
    for values, value in samples:
        family.add_metric(list(values), value)
    return family
