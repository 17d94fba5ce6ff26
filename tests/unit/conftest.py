"""Shared builders for unit tests (no event loop, no broker)."""

from __future__ import annotations

import pytest

from agents.logic.churn import ModelParams
from agents.logic.days import DAY_MS, Calendar
from agents.logic.engine import Engine
from agents.logic.engine_types import EngineConfig
from agents.logic.fold import FoldConfig
from agents.logic.funnels import Funnel
from agents.logic.lifecycle import LifecycleConfig
from agents.logic.signals import SignalContext
from schemas.records import Event

CHANNELS = ("organic", "paid_search", "email")
CATEGORIES = (("purchase", ("purchase",)), ("social", ("share", "comment")))
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
PARAMS = ModelParams(0.8, 4.0, 0.3, 3.0)


def make_event(
    user: str,
    ms: int,
    event_id: str | None = None,
    event_type: str = "page_view",
    channel: str | None = None,
) -> Event:
    return Event(event_id or f"{user}-{ms}", user, event_type, ms, channel)


def engine_config(
    clock: str = "event",
    dormant_days: float = 7,
    churned_days: float = 30,
    threshold: float = 0.05,
    timezone: str = "UTC",
    *,
    discard_days: float = 400,
    lateness_ms: int = 3_600_000,
    params: ModelParams = PARAMS,
    funnels: tuple[Funnel, ...] = (),
) -> EngineConfig:
    calendar = Calendar(timezone)
    return EngineConfig(
        fold=FoldConfig.build(calendar, 120, CHANNELS, CATEGORIES, funnels=funnels),
        lifecycle=LifecycleConfig(
            calendar,
            int(dormant_days * DAY_MS),
            int(churned_days * DAY_MS),
            int(discard_days * DAY_MS),
            threshold,
            params,
        ),
        signals=SignalContext(clock, ("other", *CHANNELS), ("purchase", "social")),
        clock=clock,
        lateness_ms=lateness_ms,
        aggregate_days=35,
        retention_days=(1, 7, 30),
    )


@pytest.fixture
def fold_config() -> FoldConfig:
    return FoldConfig.build(Calendar("UTC"), 120, CHANNELS, CATEGORIES)


@pytest.fixture
def engine() -> Engine:
    eng = Engine(engine_config())
    eng.assign(0, {})
    return eng
