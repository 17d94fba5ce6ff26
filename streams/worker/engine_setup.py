"""The engine's configuration from the settings."""

from __future__ import annotations

from agents.logic.churn import ModelParams
from agents.logic.days import Calendar
from agents.logic.engine_types import EngineConfig
from agents.logic.fold import FoldConfig
from agents.logic.lifecycle import LifecycleConfig
from agents.logic.signals import SignalContext
from streams.settings import Settings, check_threshold


def model_params(settings: Settings) -> ModelParams:
    """Population parameters: the parameters file if one is set, else the settings.

    SettingsError naming ENGAGEMENT_ALIVE_THRESHOLD if the file's parameters put it at or above
    a new user's P(alive) (the settings' own parameters are checked in Settings)."""
    if not settings.model_file:
        return settings.settings_params()
    params = ModelParams.load(settings.model_file)
    check_threshold(params, settings.alive_threshold, "ENGAGEMENT_MODEL_FILE")
    return params


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
        state_cache=state_cache_per_partition(settings),
    )


def state_cache_per_partition(settings: Settings) -> int:
    """ENGAGEMENT_STATE_CACHE split over the partitions; none over the memory store (a dict
    already)."""
    if settings.store == "memory://" or not settings.state_cache:
        return 0
    return max(1, settings.state_cache // settings.partitions)
