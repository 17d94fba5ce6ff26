"""A per-partition deadline index whose cost per tick is proportional to the users due.

Deadlines are bucketed into ``resolution_ms`` slots (rounded up) with a heap of slot numbers.
A pop takes every slot up to the one holding ``now``, so a deadline at or before ``now`` is never
left waiting for its slot to end (at the end of a replay the event clock stops at a watermark
that need not be a slot boundary); the caller fires those whose deadline is <= now and re-arms
the few of the current slot that are not due yet. The index may
hold stale entries: the caller re-reads the user's state when it pops, acts if the state's
deadline is due, and re-arms otherwise. To keep the index near one entry per user, callers only
add an entry when a user's deadline moves *earlier* (or is new); a deadline that moves later is
found by its old entry, which re-arms it.
"""

from __future__ import annotations

import heapq


class DeadlineIndex:
    """Bucketed min-index of (deadline, key)."""

    __slots__ = ("_buckets", "_heap", "_resolution", "_size")

    def __init__(self, resolution_ms: int = 100) -> None:
        self._resolution = resolution_ms
        self._buckets: dict[int, list[bytes]] = {}
        self._heap: list[int] = []
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def add(self, due_ms: int, key: bytes) -> None:
        slot = -(-due_ms // self._resolution)
        bucket = self._buckets.get(slot)
        if bucket is None:
            self._buckets[slot] = [key]
            heapq.heappush(self._heap, slot)
        else:
            bucket.append(key)
        self._size += 1

    def pop_due(self, now_ms: int, limit: int = 1_000_000) -> list[bytes]:
        """Remove and return the keys of every slot up to the one holding ``now_ms`` (at most
        about ``limit``): some of the last slot's deadlines may lie a little after ``now_ms``."""
        due: list[bytes] = []
        heap, buckets, resolution = self._heap, self._buckets, self._resolution
        last = -(-now_ms // resolution)
        while heap and heap[0] <= last and len(due) < limit:
            due.extend(buckets.pop(heapq.heappop(heap)))
        self._size -= len(due)
        return due

    def clear(self) -> None:
        self._buckets.clear()
        self._heap.clear()
        self._size = 0
