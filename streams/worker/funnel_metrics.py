"""The funnel gauges (ENGAGEMENT_FUNNELS), from the snapshot the worker refreshes on a timer.

Numerator and denominator per funnel x step x channel x cohort week, so conversion adds up
across workers and is a recording rule; the time from one step to the next as a histogram of
the users held (like the signals' time to return: derived from state, so it can go down).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from agents.logic.funnel_counts import STEP_TIME_BUCKETS_S, FunnelCounts, week_label
from agents.logic.funnels import Funnel
from streams.worker.metrics import described

LABELS = ["funnel", "step", "event", "channel", "cohort"]


class FunnelCollector(Collector):
    """``engagement_funnel_*`` from the latest :class:`FunnelCounts` (None: not taken yet)."""

    def __init__(
        self,
        read: Callable[[], FunnelCounts | None],
        funnels: Sequence[Funnel],
        channels: Sequence[str],
    ) -> None:
        self._read = read
        self._funnels = tuple(funnels)
        self._channels = list(channels)  # index 0 is "other"

    def describe(self) -> list[Metric]:
        """Its families (values appear once the first snapshot is taken)."""
        return described(self._families(FunnelCounts()))

    def collect(self) -> Iterator[Metric]:
        counts = self._read()
        if counts is not None:
            yield from self._families(counts)

    def _families(self, counts: FunnelCounts) -> Iterator[Metric]:
        reached = GaugeMetricFamily(
            "engagement_funnel_reached_users",
            "Users who reached the step of the funnel, by acquisition channel and cohort (the "
            "week of their entry into the funnel).",
            labels=LABELS,
        )
        converted = GaugeMetricFamily(
            "engagement_funnel_converted_users",
            "Of the users who reached the step, those who reached the next step within the "
            "window (not exported for the last step).",
            labels=LABELS,
        )
        for (f, k, ch, week), users in sorted(counts.reached.items()):
            if f >= len(self._funnels) or users <= 0:
                continue
            funnel = self._funnels[f]
            channel = self._channels[ch] if ch < len(self._channels) else self._channels[0]
            labels = [funnel.name, str(k + 1), funnel.steps[k].label, channel, week_label(week)]
            reached.add_metric(labels, users)
            if k + 1 < len(funnel.steps):
                converted.add_metric(labels, counts.reached.get((f, k + 1, ch, week), 0))
        yield reached
        yield converted
        yield self._step_time(counts)

    def _step_time(self, counts: FunnelCounts) -> Metric:
        family = HistogramMetricFamily(
            "engagement_funnel_step_time_seconds",
            "Event time users took from the step to the next one, of the users held.",
            labels=["funnel", "step", "event"],
        )
        for f, funnel in enumerate(self._funnels):
            for k in range(len(funnel.steps) - 1):
                total, buckets = 0.0, []
                for i, bound in enumerate((*STEP_TIME_BUCKETS_S, float("inf"))):
                    total += counts.step_time[(f, k, i)]
                    le = str(float(bound)) if i < len(STEP_TIME_BUCKETS_S) else "+Inf"
                    buckets.append((le, total))
                labels = [funnel.name, str(k + 1), funnel.steps[k].label]
                family.add_metric(labels, buckets, counts.step_time_ms[(f, k)] / 1000)
        return family
