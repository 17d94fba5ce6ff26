"""The live model's metrics (:mod:`streams.worker.model_sync`), part of
:class:`streams.worker.metrics.Metrics`: the parameters in use, the fit they came from, the
refits, the calibration by P(alive) band, and the return rates of users signalled churn_risk
or not. Labels are bounded and pre-initialised."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge

from agents.logic.calibration import BAND_EDGES, Band
from agents.logic.risk_returns import GROUPS, WINDOWS, RiskReturns

MODEL_PARAMETERS = ("r", "alpha", "a", "b")
REFIT_OUTCOMES = ("accepted", "rejected", "failed")


class ModelMetrics:
    """The live model (:mod:`streams.worker.model_sync`): the parameters in use and the fit
    they came from."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.parameter = Gauge(
            "engagement_model_parameter",
            "MBG/NBD parameter in use by this worker, by name (r, alpha, a, b).",
            ["name"],
            registry=registry,
        )
        self.fit_users = Gauge(
            "engagement_model_fit_users",
            "Users the parameters in use were fitted on (0: not from a refit).",
            registry=registry,
        )
        self.fit_log_likelihood = Gauge(
            "engagement_model_fit_log_likelihood",
            "Total log-likelihood of the fit in use (0: not from a refit).",
            registry=registry,
        )
        self.fit_timestamp = Gauge(
            "engagement_model_fit_timestamp_seconds",
            "When the parameters in use were fitted (0: not from a refit).",
            registry=registry,
        )
        self.risk_off = Gauge(
            "engagement_model_churn_risk_off",
            "1 while the churn-risk signal is off because ENGAGEMENT_ALIVE_THRESHOLD is at or "
            "above b/(a+b) of the parameters in use (every new user would be at risk).",
            registry=registry,
        )
        self.refits = Counter(
            "engagement_model_refits",
            "Refits tried by this worker (the owner of partition 0), by outcome: accepted, "
            "rejected by the guards (the last good parameters stay), failed (an error).",
            ["outcome"],
            registry=registry,
        )
        for outcome in REFIT_OUTCOMES:
            self.refits.labels(outcome)
        for name in MODEL_PARAMETERS:
            self.parameter.labels(name)
        self._calibration_gauges(registry)
        for lower, upper in itertools.pairwise(BAND_EDGES):
            self.show_calibration([Band(lower, upper)])
        self._risk_return_gauges(registry)
        self.show_risk_returns(RiskReturns())

    def _calibration_gauges(self, registry: CollectorRegistry) -> None:
        self.calibration_users = Gauge(
            "engagement_model_calibration_users",
            "Users by P(alive) band at the calibration's reference day (the end of the day 8 "
            "days before today): the denominator.",
            ["band"],
            registry=registry,
        )
        self.calibration_predicted = Gauge(
            "engagement_model_calibration_predicted_visits",
            "Their expected repeat visits (active days) over the 7 days after the reference day "
            "under the parameters in use, by band.",
            ["band"],
            registry=registry,
        )
        self.calibration_actual = Gauge(
            "engagement_model_calibration_actual_visits",
            "The visits (active days) they had in those 7 days, by band.",
            ["band"],
            registry=registry,
        )

    def _risk_return_gauges(self, registry: CollectorRegistry) -> None:
        self.risk_eligible = Gauge(
            "engagement_model_churn_risk_eligible_users",
            "Users inactive on the reference day (window + 1 days before today) and active in "
            "the 30 days before it, by group (signalled churn_risk in that lapse, "
            "not_signalled, unknown) and window (7, 30 days): the denominator.",
            ["group", "window"],
            registry=registry,
        )
        self.risk_returned = Gauge(
            "engagement_model_churn_risk_return_users",
            "Of them, the users active again within the window's days after the reference "
            "day, by group and window.",
            ["group", "window"],
            registry=registry,
        )

    def show_risk_returns(self, counts: RiskReturns) -> None:
        for group in GROUPS:
            for window in WINDOWS:
                self.risk_eligible.labels(group, str(window)).set(counts.eligible[(group, window)])
                self.risk_returned.labels(group, str(window)).set(counts.returned[(group, window)])

    def show_calibration(self, bands: Sequence[Band]) -> None:
        for band in bands:
            self.calibration_users.labels(band.label).set(band.users)
            self.calibration_predicted.labels(band.label).set(band.predicted)
            self.calibration_actual.labels(band.label).set(band.actual)

    def show(self, values: tuple[float, float, float, float], fit: dict[str, float]) -> None:
        for name, value in zip(MODEL_PARAMETERS, values, strict=True):
            self.parameter.labels(name).set(value)
        self.fit_users.set(fit.get("n_users", 0.0))
        self.fit_log_likelihood.set(fit.get("log_likelihood", 0.0))
        self.fit_timestamp.set(fit.get("fitted_at_ms", 0.0) / 1000)
