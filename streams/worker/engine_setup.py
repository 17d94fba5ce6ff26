"""The engine's configuration from the settings."""

from __future__ import annotations

from agents.logic.churn import ModelParams
from agents.logic.days import Calendar
from agents.logic.engine import EngineConfig
from agents.logic.fold import FoldConfig
from agents.logic.lifecycle import LifecycleConfig
from agents.logic.signals import SignalContext
from streams.settings import Settings


def model_params(settings: Settings) -> ModelParams:
    """Population parameters: the parameters file if one is set, else the settings."""
    if settings.model_file:
        return ModelParams.load(settings.model_file)
    return ModelParams(settings.model_r, settings.model_alpha, settings.model_a, settings.model_b)


def engine_config(settings: Settings) -> EngineConfig:
    calendar = Calendar(settings.timezone)
    return EngineConfig(
        fold=FoldConfig.build(
            calendar,
            settings.horizon_days,
            settings.channels,
            settings.categories,
            funnels=settings.funnels,
        ),
        lifecycle=LifecycleConfig(
            calendar,
            int(settings.dormant_after * 1000),
            int(settings.churned_after * 1000),
            int(settings.discard_after * 1000),
            settings.alive_threshold,
            model_params(settings),
        ),
        signals=SignalContext(
            settings.clock,
            settings.channel_labels,
            tuple(name for name, _ in settings.categories),
        ),
        clock=settings.clock,
        lateness_ms=int(settings.allowed_lateness * 1000),
        aggregate_days=settings.aggregate_days,
        retention_days=settings.retention_days,
        source_timeout_ms=int(settings.idle_timeout * 1000),
        frontier=not settings.input_keyed_by_user,
        signal_max_age_ms=int(settings.signal_max_age * 1000),
        holdout_share=settings.holdout_share,
        holdout_salt=settings.holdout_salt,
    )
