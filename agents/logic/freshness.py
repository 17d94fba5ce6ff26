"""Whether a decision is still worth acting on: the frontier cap and the signal max age.

* :func:`frontier_now` — on the wall clock, deadlines fire up to min(wall now, the partition's
  input frontier): no user is declared dormant while their newer events may still wait unread
  (:mod:`agents.logic.frontier`).
* :func:`is_stale` — ``ENGAGEMENT_SIGNAL_MAX_AGE``: a signal whose trigger lies further behind
  the clock's now than the max age (a first start on months of history, a long outage) is not
  delivered; the user's state advances exactly as if it had been.
"""

from __future__ import annotations

from collections.abc import Iterable

from agents.logic.frontier import SourceFrontiers


def frontier_now(frontiers: SourceFrontiers | None, wall_ms: int) -> int:
    """Wall now capped by the frontier; 0 (nothing fires) until a source has reported one."""
    if frontiers is None:
        return 0
    return min(wall_ms, frontiers.value(wall_ms))


def is_stale(trigger_ms: int, now_ms: int, max_age_ms: int) -> bool:
    """True if a signal triggered at ``trigger_ms`` is older than ``max_age_ms`` at ``now_ms``
    (wall clock: wall time; event clock: the partition's watermark as it was before the batch
    being folded, so a replay of old history still publishes what was fresh at its own time
    even where one batch moves the watermark by days). ``max_age_ms`` 0: never stale."""
    return max_age_ms > 0 and now_ms - trigger_ms > max_age_ms


def observe_frontier(
    frontiers: SourceFrontiers | None, source: str, frontier_ms: int, wall_ms: int, timeout_ms: int
) -> SourceFrontiers:
    """``frontiers`` (created on the first report) with ``source``'s new frontier."""
    if frontiers is None:
        frontiers = SourceFrontiers(timeout_ms)
    frontiers.observe(source or "-", frontier_ms, wall_ms)
    return frontiers


def frontier_lag_ms(frontiers: Iterable[SourceFrontiers | None], wall_ms: int) -> int:
    """Wall now minus the frontier, the largest over the partitions that know one (a source
    that has read nothing yet reports 0: unknown, not 56 years behind)."""
    values = (f.value(wall_ms) for f in frontiers if f is not None)
    return max((max(0, wall_ms - v) for v in values if v > 0), default=0)
