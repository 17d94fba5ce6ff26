"""Event-time watermarks that never run ahead of data still to come.

Two levels, both pure (wall time passed in):

* :class:`InputWatermark` — one ingest instance over the input partitions it reads. Its
  watermark is the *minimum* over its non-idle partitions of the newest event time seen there,
  minus the allowed lateness; a partition that reached its end (end-of-partition event) is idle
  and does not hold the others back. Taking the maximum instead would let one partition's
  future jump the clock while another partition's older events are still unread.
* :class:`SourceWatermarks` — one ``events.by_user`` partition over the ingest instances
  (sources) writing to it: the minimum over sources heard from recently, so several workers'
  ingests advance the clock together; a source silent for ``timeout_ms`` (its worker is gone,
  its input partitions moved) stops counting.

Both only move forward.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable


class InputWatermark:
    """The watermark of one ingest instance."""

    __slots__ = ("_assigned", "_idle", "_lateness", "_newest", "_value")

    def __init__(self, lateness_ms: int) -> None:
        self._lateness = lateness_ms
        self._assigned: set[Hashable] = set()
        self._idle: set[Hashable] = set()
        self._newest: dict[Hashable, int] = {}
        self._value = 0

    def assign(self, partitions: Iterable[Hashable]) -> None:
        self._assigned.update(partitions)

    def revoke(self, partitions: Iterable[Hashable]) -> None:
        for partition in partitions:
            self._assigned.discard(partition)
            self._idle.discard(partition)

    def observe(self, partition: Hashable, newest_ms: int) -> None:
        """Events up to ``newest_ms`` were read from ``partition``."""
        self._idle.discard(partition)
        if newest_ms > self._newest.get(partition, 0):
            self._newest[partition] = newest_ms

    def reached_end(self, partition: Hashable) -> None:
        """``partition`` has nothing more to read for now."""
        self._idle.add(partition)

    @property
    def value(self) -> int:
        active = self._assigned - self._idle
        if active:
            frontier = min(self._newest.get(p, 0) for p in active)
        else:
            frontier = max(
                (self._newest[p] for p in self._assigned if p in self._newest), default=0
            )
        if frontier > 0 and frontier - self._lateness > self._value:
            self._value = frontier - self._lateness
        return self._value


class SourceWatermarks:
    """The watermark of one partition fed by several sources."""

    __slots__ = ("_sources", "_timeout", "value")

    def __init__(self, timeout_ms: int, floor_ms: int = 0) -> None:
        self._timeout = timeout_ms
        self._sources: dict[str, tuple[int, int]] = {}
        self.value = floor_ms

    def observe(self, source: str, watermark_ms: int, wall_ms: int) -> int:
        """Record ``source``'s watermark; returns the partition's (monotonic) watermark."""
        previous = self._sources.get(source, (0, 0))[0]
        self._sources[source] = (max(previous, watermark_ms), wall_ms)
        for name in [n for n, (_, seen) in self._sources.items() if wall_ms - seen > self._timeout]:
            del self._sources[name]
        low = min(w for w, _ in self._sources.values())
        self.value = max(self.value, low)
        return self.value
