"""An independent oracle for activation funnels: stdlib only, no project imports.

From the definitions in ARCHITECTURE.md ("Funnels"), over the full set of a user's events taken
in time order: a user enters at their first event of step 1; reaches step k at the first event
of step k strictly after reaching step k-1 and within the window from entry; converts on
reaching the last step within the window; stalls at step k when the window ends (at or before
``now_ms``) with step k reached and step k+1 not. Duplicates (same event id) count once.
A step is an event type, or an event type with properties the event must have, each with an
equal JSON value (``true`` is not ``1``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from hashlib import blake2b
from typing import Any

StepSpec = str | tuple[str, Mapping[str, Any]]  # an event type, or (event type, properties)


@dataclass(frozen=True)
class FunnelSpec:
    name: str
    steps: tuple[StepSpec, ...]  # in order
    window_ms: int


@dataclass(frozen=True)
class Hit:
    user_id: str
    event_id: str
    event_type: str
    ms: int
    properties: Mapping[str, Any] | None = None


def is_step(e: Hit, step: StepSpec) -> bool:
    """Whether ``e`` is an event of ``step``."""
    if isinstance(step, str):
        return e.event_type == step
    event_type, wanted = step
    found = e.properties or {}
    return e.event_type == event_type and all(
        key in found
        and found[key] == value
        and isinstance(found[key], bool) == isinstance(value, bool)
        for key, value in wanted.items()
    )


@dataclass(frozen=True)
class Stalled:
    user_id: str
    funnel: str
    at_ms: int  # the end of the window
    step_reached: int  # 1-based
    reached_at_ms: int

    @property
    def signal_id(self) -> str:
        text = f"{self.user_id}\x1fstalled\x1f{self.at_ms}\x1f{self.funnel}"
        return blake2b(text.encode(), digest_size=16).hexdigest()


def progress(events: Sequence[Hit], funnel: FunnelSpec) -> list[int]:
    """The times each step was reached, as far as the user got ([]: never entered)."""
    ordered = sorted({e.event_id: e for e in events}.values(), key=lambda e: e.ms)
    times: list[int] = []
    for e in ordered:
        if not times:
            if is_step(e, funnel.steps[0]):
                times.append(e.ms)
            continue
        if len(times) == len(funnel.steps) or e.ms > times[0] + funnel.window_ms:
            break
        if is_step(e, funnel.steps[len(times)]) and e.ms > times[-1]:
            times.append(e.ms)
    return times


def by_user(events: Iterable[Hit]) -> dict[str, list[Hit]]:
    users: dict[str, list[Hit]] = {}
    for e in events:
        users.setdefault(e.user_id, []).append(e)
    return users


def expected_stalls(
    events: Iterable[Hit], funnels: Sequence[FunnelSpec], now_ms: int
) -> set[Stalled]:
    """Every stalled signal due by ``now_ms``."""
    out: set[Stalled] = set()
    for user, mine in by_user(events).items():
        for funnel in funnels:
            times = progress(mine, funnel)
            end = times[0] + funnel.window_ms if times else None
            if end is not None and len(times) < len(funnel.steps) and end <= now_ms:
                out.add(Stalled(user, funnel.name, end, len(times), times[-1]))
    return out


def week_of_entry(ms: int) -> str:
    """The Monday (UTC) of the week holding ``ms``, as an ISO date."""
    day = datetime.fromtimestamp(ms / 1000, tz=UTC).date()
    return (day - timedelta(days=day.weekday())).isoformat()


def expected_counts(
    events: Iterable[Hit], funnels: Sequence[FunnelSpec], channel_of: dict[str, str]
) -> dict[tuple[str, int, str, str], int]:
    """(funnel, step (1-based), channel, cohort week) -> users who reached the step; users who
    converted from step k to k+1 are the count of step k+1 in the same cohort."""
    out: dict[tuple[str, int, str, str], int] = {}
    for user, mine in by_user(events).items():
        for funnel in funnels:
            times = progress(mine, funnel)
            for k in range(len(times)):
                key = (funnel.name, k + 1, channel_of[user], week_of_entry(times[0]))
                out[key] = out.get(key, 0) + 1
    return out
