"""Event-time watermarks that never run ahead of data still to come.

Two levels, both pure (wall time passed in):

* :class:`InputWatermark` — one ingest instance over the input partitions it reads. Its
  watermark is the *minimum* over its non-idle partitions of the newest event time seen there,
  minus the allowed lateness. Idleness is decided by time, as Flink's ``withIdleness``: a
  partition is idle once it has been at its end (nothing unread) for ``idle_ms`` of wall time.
  Reaching the end alone is not enough: a fast producer's partitions are read unevenly, and a
  partition that is momentarily caught up still has events to come whose times may lie behind
  the other partitions'. A partition with unread records is never idle. Only when every
  partition is idle does the newest of them set the clock (nothing is left to wait for).
  "At its end" is what the consumer's last fetch said, and a partition whose leader is down or
  moving is fetched from by nobody: it looks idle while its events wait on the broker. So an
  idle partition stops holding the clock only once the broker has *confirmed* its end
  (:meth:`InputWatermark.confirmed`), and only for the data read before that confirmation was
  asked for: new data on the other partitions waits for the next confirmation.
* :class:`SourceWatermarks` — one ``events.by_user`` partition over the ingest instances
  (sources) writing to it: the minimum over sources heard from recently, so several workers'
  ingests advance the clock together; a source silent for ``timeout_ms`` (its worker is gone,
  its input partitions moved) stops counting. A source names the input partitions it reads
  (:func:`source_id`), and the clock moves only while the sources heard from cover every
  input partition: a by_user partition cannot know of an ingest instance before its first
  record arrives, and at a start at full speed one instance's records can be far ahead of
  another's first.

Both only move forward.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final


class InputWatermark:
    """The watermark of one ingest instance."""

    __slots__ = (
        "_assigned",
        "_at_end_since",
        "_confirmed",
        "_end_offsets",
        "_idle_ms",
        "_lateness",
        "_newest",
        "_previous",
        "_reads",
        "_value",
        "generation",
    )

    def __init__(self, lateness_ms: int, idle_ms: int) -> None:
        self._lateness = lateness_ms
        self._idle_ms = idle_ms
        self._assigned: set[Hashable] = set()
        self._at_end_since: dict[Hashable, int] = {}  # partition -> wall ms it reached its end
        self._end_offsets: dict[Hashable, int] = {}  # ... and the offset that end was at
        self._newest: dict[Hashable, int] = {}
        self._value = 0
        # at-end partitions the broker confirmed -> the frontier that confirmation vouches for
        self._confirmed: dict[Hashable, int] = {}
        self._reads: dict[Hashable, int] = {}  # partition -> reads since assigned (a version)
        self._previous: frozenset[Hashable] = frozenset()  # the assignment before this one
        self.generation = 0  # assignments that brought partitions this instance did not have

    def assign(self, partitions: Iterable[Hashable]) -> None:
        """Partitions assigned (an eager rebalance revokes everything, then assigns the whole
        new set). A partition this instance did not hold before may have been read by
        another instance, from a position far behind what this one has read elsewhere, so
        the watermark starts over: a new :attr:`generation`, which the ingest puts in its
        source name, so that ``events.by_user`` partitions take it as a new source (once,
        the same instance took back partitions it had given up and carried its old clock
        days past the events it then re-read)."""
        partitions = set(partitions)
        gained = partitions - self._previous
        for partition in gained:
            self._newest.pop(partition, None)
            self._not_at_end(partition)
        if gained:
            self._value = 0
            self.generation += 1
        self._assigned.update(partitions)
        self._previous = frozenset(self._assigned)

    def revoke(self, partitions: Iterable[Hashable]) -> None:
        for partition in partitions:
            self._assigned.discard(partition)
            self._not_at_end(partition)

    def observe(self, partition: Hashable, newest_ms: int) -> None:
        """Events up to ``newest_ms`` were read from ``partition``."""
        self._not_at_end(partition)
        if newest_ms > self._newest.get(partition, 0):
            self._newest[partition] = newest_ms

    def newest(self, partition: Hashable) -> int:
        """The newest event time read from ``partition`` (0: none yet)."""
        return self._newest.get(partition, 0)

    def seed(self, partition: Hashable, newest_ms: int) -> None:
        """Events up to ``newest_ms`` were read from ``partition`` before this instance's
        position, by whoever committed it (:func:`commit_metadata`). Without it an instance
        that starts at the end of its input never learns an event time: its watermark stays
        0 and holds every partition's clock where the one before it left off."""
        if partition in self._assigned and newest_ms > self._newest.get(partition, 0):
            self._newest[partition] = newest_ms

    def _not_at_end(self, partition: Hashable) -> None:
        self._at_end_since.pop(partition, None)
        self._end_offsets.pop(partition, None)
        self._confirmed.pop(partition, None)
        self._reads[partition] = self._reads.get(partition, 0) + 1

    def reached_end(self, partition: Hashable, wall_ms: int, end_offset: int) -> None:
        """``partition`` has nothing more to read for now: its end-of-partition event, which
        said where the end was (``end_offset``; negative: not known, and then the broker's
        answers cannot confirm it)."""
        self._at_end_since.setdefault(partition, wall_ms)
        self._end_offsets[partition] = end_offset

    def has_unread(self, partition: Hashable) -> None:
        """``partition`` has records not read yet (its high watermark is past our position):
        it is not at its end, whatever end-of-partition event came before."""
        self._not_at_end(partition)

    @property
    def assigned(self) -> frozenset[Hashable]:
        return frozenset(self._assigned)

    def at_end(self) -> list[Hashable]:
        """The partitions currently taken to be at their end."""
        return list(self._at_end_since)

    def end_offset(self, partition: Hashable) -> int:
        """Where ``partition``'s end was when it reached it (-1: not at its end, or not known)."""
        return self._end_offsets.get(partition, -1)

    def ask(self, wall_ms: int) -> EndQuestion:
        """What to ask the broker now: are these at-end partitions really at their end? The
        answer (:meth:`confirmed`) vouches for the frontier as it is at this moment."""
        versions = {p: self._reads.get(p, 0) for p in self._at_end_since}
        return EndQuestion(versions, self._frontier(self._idle(wall_ms)))

    def answer(self, question: EndQuestion, ends: Mapping[Hashable, int]) -> list[Hashable]:
        """The broker answered ``question`` with each partition's end offset (``ends``). A
        partition whose end lies past the offset its end-of-partition event gave has records
        not read yet: it is not at its end any more, and is returned. The others are
        :meth:`confirmed`. The offset comes from that event, not from the consumer's position,
        because librdkafka knows no position before the first record: a consumer restarted at
        a partition's end reports none (-1001) even while new records wait on the broker.
        Partitions read since the question was asked are left alone (their answer is out of
        date), and so are those whose end offset is not known."""
        unread: list[Hashable] = []
        at_end: list[Hashable] = []
        for partition, end in ends.items():
            known = self.end_offset(partition)
            if known < 0 or self._reads.get(partition, 0) != question.versions.get(partition, -1):
                continue
            (unread if end > known else at_end).append(partition)
        for partition in unread:
            self._not_at_end(partition)
        self.confirmed(question, at_end)
        return unread

    def confirmed(self, question: EndQuestion, partitions: Iterable[Hashable]) -> None:
        """The broker answered ``question``: ``partitions`` had nothing unread. Those read
        since the question was asked are left out (their answer is out of date)."""
        for partition in partitions:
            if self._reads.get(partition, 0) == question.versions.get(partition, -1):
                self._confirmed[partition] = question.frontier_ms

    def _idle(self, wall_ms: int) -> set[Hashable]:
        return {p for p, since in self._at_end_since.items() if wall_ms - since >= self._idle_ms}

    def _frontier(self, idle: set[Hashable]) -> int:
        active = self._assigned - idle
        if active:
            return min(self._newest.get(p, 0) for p in active)
        return max((self._newest[p] for p in self._assigned if p in self._newest), default=0)

    def value(self, wall_ms: int) -> int:
        """The watermark at ``wall_ms``: it only moves forward. An idle partition whose end the
        broker has not confirmed holds it like an active one; a confirmed one lets it move up
        to the frontier its confirmation vouched for."""
        idle = self._idle(wall_ms) & self._confirmed.keys()
        frontier = self._frontier(idle)
        if idle:
            frontier = min(frontier, *(self._confirmed[p] for p in idle))
        if frontier > 0 and frontier - self._lateness > self._value:
            self._value = frontier - self._lateness
        return self._value


@dataclass(frozen=True, slots=True)
class EndQuestion:
    """A question to the broker about the partitions at their end: each partition's read
    count when it was asked, and the frontier (newest event times, idle partitions left out)
    a confirmation of all of them allows."""

    versions: Mapping[Hashable, int]
    frontier_ms: int


NEWEST: Final = "newest="  # commit metadata: the newest event time read before the committed offset


def commit_metadata(newest_ms: int) -> str:
    """What an input offset commit carries: the newest event time of the records before it."""
    return f"{NEWEST}{newest_ms}" if newest_ms > 0 else ""


def newest_of(metadata: str | None) -> int:
    """Inverse of :func:`commit_metadata`; 0 for metadata of another shape (an earlier
    version, or offsets set by a tool)."""
    if not metadata or not metadata.startswith(NEWEST):
        return 0
    value = metadata[len(NEWEST) :]
    return int(value) if value.isascii() and value.isdigit() else 0


def source_id(instance: str, inputs: int, owned: Iterable[int]) -> str:
    """``instance:inputs:bitmap``: an ingest instance, the input topic's partition count and
    the partitions it reads (a hex bitmap). A new assignment is a new source; the old one
    expires after the timeout, holding the clock at most until then."""
    mask = 0
    for partition in owned:
        mask |= 1 << partition
    return f"{instance}:{inputs}:{mask:x}"


def _coverage(source: str) -> tuple[int, int] | None:
    """(input partitions, bitmap) that ``source`` reads, or None for a source that does not
    say (an ingest of an earlier version, or a test)."""
    parts = source.split(":")
    if len(parts) != 3:
        return None
    try:
        return int(parts[1]), int(parts[2], 16)
    except ValueError:
        return None


def _lineage(source: str) -> tuple[str, int] | None:
    """(instance, generation) of an ``instance.generation:inputs:bitmap`` source, or None."""
    instance, dot, generation = source.split(":", 1)[0].rpartition(".")
    if not dot or not generation.isdigit():
        return None
    return instance, int(generation)


def superseded(sources: Iterable[str], source: str) -> list[str]:
    """The sources of ``source``'s own ingest instance (one process, a random id) with an older
    generation. That instance writes each partition through one producer, in order, so all
    they wrote came before ``source``'s record: they hold nothing back any more, and waiting
    for them to time out would hold every deadline for ENGAGEMENT_IDLE_TIMEOUT after each
    start or rebalance."""
    lineage = _lineage(source)
    if lineage is None:
        return []
    instance, generation = lineage
    return [
        name
        for name in sources
        if (other := _lineage(name)) is not None and other[0] == instance and other[1] < generation
    ]


def covers_all(sources: Iterable[str]) -> bool:
    """True unless the sources name their input partitions and leave one out."""
    inputs, mask = 0, 0
    for source in sources:
        coverage = _coverage(source)
        if coverage is None:
            return True  # an older ingest: the minimum over what is heard, as before
        inputs, mask = max(inputs, coverage[0]), mask | coverage[1]
    return inputs == 0 or mask & ((1 << inputs) - 1) == (1 << inputs) - 1


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
        if covers_all(self._sources):
            low = min(w for w, _ in self._sources.values())
            self.value = max(self.value, low)
        return self.value

    def to_wire(self) -> dict[str, list[int]]:
        """Each source's watermark and the wall ms it was last heard from (the partition meta
        record keeps them, so a restart or a takeover continues from them)."""
        return {name: [w, seen] for name, (w, seen) in self._sources.items()}

    @classmethod
    def from_wire(cls, timeout_ms: int, floor_ms: int, data: Any) -> SourceWatermarks:
        """Inverse of :meth:`to_wire`; raises TypeError or ValueError on another shape."""
        marks = cls(timeout_ms, floor_ms)
        for name, (watermark, seen) in dict(data).items():
            marks._sources[str(name)] = (int(watermark), int(seen))
        return marks
