"""The processing-time frontier: wall time up to which all input has been read.

On the wall clock a deadline may only fire once the partition has read every event that could
still cancel it: a worker that was down past users' deadlines must not declare them dormant
before it has read the backlog holding their newer events. Two levels, both pure (wall time
passed in), mirroring :mod:`agents.logic.watermarks`:

* :class:`InputFrontier` — one ingest instance over the input partitions it reads. A partition
  at its end (nothing unread as of the last fetch) is read up to now; one with records left is
  read up to the newest Kafka record timestamp read from it (0 until one is read), and no
  further than the newest event time read from it plus the allowed lateness: a bulk load of
  history, published just now, is read up to the event time it got to, not up to now. The
  instance's frontier is the minimum over its partitions, or now if it reads none.
* :class:`SourceFrontiers` — one ``events.by_user`` partition over the ingest instances writing
  to it: the minimum over the sources heard from within ``timeout_ms``. Unlike a watermark it
  may move back: a source that took over an input partition with a backlog holds the deadlines
  again until it has read it (a deadline already fired stays fired).

Kafka record timestamps are the producers' CreateTime unless the topic uses LogAppendTime; a
producer whose clock runs ahead moves the frontier ahead by its skew.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Any

from agents.logic.watermarks import covers_all, superseded


class InputFrontier:
    """The frontier of one ingest instance."""

    __slots__ = ("_assigned", "_at_end", "_events", "_known", "_lateness", "_read")

    def __init__(self, lateness_ms: int = 0) -> None:
        self._lateness = lateness_ms
        self._events: dict[Hashable, int] = {}  # partition -> newest event time read
        self._known = False  # an assignment arrived (maybe empty) and no rebalance is under way
        self._assigned: set[Hashable] = set()
        self._at_end: set[Hashable] = set()
        self._read: dict[Hashable, int] = {}  # partition -> newest record timestamp read

    def assign(self, partitions: Iterable[Hashable]) -> None:
        self._assigned.update(partitions)
        self._known = True

    def revoke(self, partitions: Iterable[Hashable]) -> None:
        """Partitions taken away: a rebalance is under way, and until the next assignment this
        instance does not know what it reads (an eager rebalance revokes everything first)."""
        self._known = False
        for partition in partitions:
            self._assigned.discard(partition)
            self._at_end.discard(partition)
            self._read.pop(partition, None)
            self._events.pop(partition, None)

    def read(self, partition: Hashable, record_ms: int, event_ms: int = 0) -> None:
        """Records up to Kafka timestamp ``record_ms`` and events up to event time
        ``event_ms`` (0: no valid event among them) were read from ``partition``."""
        self._at_end.discard(partition)
        if record_ms > self._read.get(partition, 0):
            self._read[partition] = record_ms
        if event_ms > self._events.get(partition, 0):
            self._events[partition] = event_ms

    def reached_end(self, partition: Hashable) -> None:
        self._at_end.add(partition)

    def has_unread(self, partition: Hashable) -> None:
        self._at_end.discard(partition)

    def value(self, wall_ms: int) -> int:
        """Wall ms up to which everything on this instance's partitions has been read: 0 before
        its assignment is known (a restarted worker must not vouch for input it has not even
        been given yet), now if it was assigned nothing."""
        if not self._known:
            return 0
        if not self._assigned:
            return wall_ms
        return min(self._partition(p, wall_ms) for p in self._assigned)

    def _partition(self, partition: Hashable, wall_ms: int) -> int:
        if partition in self._at_end:
            return wall_ms
        read = min(self._read.get(partition, 0), wall_ms)
        event = self._events.get(partition)
        return read if event is None else min(read, event + self._lateness)


class SourceFrontiers:
    """The frontier of one partition fed by several sources (0 until one is heard)."""

    __slots__ = ("_sources", "_timeout")

    def __init__(self, timeout_ms: int) -> None:
        self._timeout = timeout_ms
        self._sources: dict[str, tuple[int, int]] = {}  # source -> (frontier, heard at wall ms)

    def observe(self, source: str, frontier_ms: int, wall_ms: int) -> None:
        """Record ``source``'s frontier; sources silent for longer than the timeout go, and so
        do older generations of ``source``'s own instance (:func:`superseded`)."""
        self._sources[source] = (frontier_ms, wall_ms)
        for name in [n for n, (_, seen) in self._sources.items() if wall_ms - seen > self._timeout]:
            del self._sources[name]
        for name in superseded(self._sources, source):
            del self._sources[name]

    def value(self, wall_ms: int) -> int:
        """The minimum over the live sources, once they cover every input partition (see
        :func:`agents.logic.watermarks.covers_all`); a partition whose sources all went silent keeps
        the last minimum it knew (it cannot know more), so its deadlines wait."""
        live = {n: f for n, (f, seen) in self._sources.items() if wall_ms - seen <= self._timeout}
        if live:  # sources that leave an input partition out vouch for nothing yet
            return min(live.values()) if covers_all(live) else 0
        return min((f for f, _ in self._sources.values()), default=0)

    def to_wire(self) -> dict[str, list[int]]:
        return {name: [f, seen] for name, (f, seen) in self._sources.items()}

    @classmethod
    def from_wire(cls, timeout_ms: int, data: Any) -> SourceFrontiers:
        """Inverse of :meth:`to_wire`; raises TypeError or ValueError on another shape."""
        frontiers = cls(timeout_ms)
        for name, (frontier, seen) in dict(data).items():
            frontiers._sources[str(name)] = (int(frontier), int(seen))
        return frontiers
