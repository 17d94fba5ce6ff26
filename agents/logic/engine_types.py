"""The engine's configuration and what one of its steps produced (:mod:`agents.logic.engine`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agents.logic.days import Calendar
from agents.logic.fold import FoldConfig
from agents.logic.lifecycle import LifecycleConfig
from agents.logic.signals import SignalContext


@dataclass(frozen=True, slots=True)
class EngineConfig:
    fold: FoldConfig
    lifecycle: LifecycleConfig
    signals: SignalContext
    clock: str  # "wall" | "event"
    lateness_ms: int
    aggregate_days: int
    retention_days: tuple[int, ...]
    source_timeout_ms: int = 30_000
    # wall clock: deadlines wait for the input frontier carried in by_user batches (ingest)
    frontier: bool = False
    signal_max_age_ms: int = 0  # older triggers are not delivered (0: off); see freshness
    holdout_share: float = 0.0  # share of signalled users held out, per kind (0: off)
    holdout_salt: str = ""
    state_cache: int = 0  # durable user states kept in memory per partition (0: none)

    @property
    def calendar(self) -> Calendar:
        return self.fold.calendar


@dataclass(slots=True)
class Output:
    """What a step produced: signals to deliver (before the changelog of its states)."""

    signals: list[tuple[str, bytes, dict[str, Any]]] = field(default_factory=list)
    events: int = 0
    duplicates: int = 0
    late: int = 0
    newest_ms: int = 0  # the newest event time of the batch (0: none)
    suppressed: dict[str, int] = field(default_factory=dict)  # stale signals, by kind
    # event clock: the watermark before a batch's own advance, which may jump days at once
    clock_ms: int | None = None
