"""Durable user states written to RocksDB in groups, as Kafka Streams' record cache does.

Once Kafka has a group's changelog records, their states are durable: a restart reads them back
from the changelog. Writing them to RocksDB at once only shortens that read. So the RocksDB
store takes each partition's writes into ``pending`` and writes them in one batch per partition
every ``ENGAGEMENT_STATE_WRITE_BACK`` (or once ``max_keys`` states wait): a user whose events
arrive in several groups within that time costs one RocksDB write, not one per group.

What keeps the store exact: the changelog offset a group's records reached is recorded for the
store (its persisted offset, from which a restart or a rebalance reads the changelog) only once
the states up to it are in RocksDB, never before. A crash loses the pending writes and the
offsets that cover them together, and the changelog has both. Every other writer of the store
(recovery, the bulk restore) and every reader of its whole contents writes the pending states
first, so none of them sees the store behind its offset or has older states written over the
newer ones it wrote. Reads of one key look at ``pending`` first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

Items = list[tuple[bytes, bytes | None]]


class WriteBack:
    """Pending writes of each partition and the changelog offsets they bring the store to."""

    __slots__ = (
        "_keys",
        "_offsets",
        "_persist",
        "_since",
        "_write",
        "interval_s",
        "max_keys",
        "pending",
    )

    def __init__(
        self,
        write: Callable[[int, Items], None],
        persist: Callable[[int, int], None],
        interval_s: float = 0.0,
        max_keys: int = 0,
    ) -> None:
        self.interval_s = interval_s  # 0: write through (the store does not call take)
        self.max_keys = max_keys
        self._write = write  # (partition, items): one RocksDB write batch
        self._persist = persist  # (partition, changelog offset): the store's persisted offset
        self.pending: dict[int, dict[bytes, bytes | None]] = {}
        self._offsets: dict[int, int] = {}
        self._keys = 0
        self._since: float | None = None

    def pending_of(self, number: int) -> dict[bytes, bytes | None]:
        """The pending writes of partition ``number`` (one dict for its lifetime here)."""
        return self.pending.setdefault(number, {})

    def take(self, number: int, items: Items, now: float) -> None:
        """Durable states of partition ``number`` (``None``: deleted), to write later."""
        pending = self.pending_of(number)
        before = len(pending)
        pending.update(items)
        self._keys += len(pending) - before
        if self._since is None:
            self._since = now

    def reached(self, number: int, offset: int, now: float) -> None:
        """The changelog of partition ``number`` holds everything taken so far up to
        ``offset``: recorded for the store once those states are written (at once if none
        wait); then everything pending is written if it is due."""
        if self.pending.get(number):
            self._offsets[number] = offset
        else:
            self._persist(number, offset)
        if self._since is not None and (
            self._keys >= self.max_keys or now - self._since >= self.interval_s
        ):
            self.write()

    def write(self, numbers: Iterable[int] | None = None) -> None:
        """Write the pending states of partitions ``numbers`` (default: all), then record the
        offsets they reach."""
        for number in list(self.pending) if numbers is None else numbers:
            pending = self.pending.get(number)
            if pending:
                self._write(number, list(pending.items()))
                self._keys -= len(pending)
                pending.clear()
            offset = self._offsets.pop(number, None)
            if offset is not None:
                self._persist(number, offset)
        if self._keys <= 0:
            self._keys = 0
            self._since = None

    def forget(self) -> None:
        """Drop everything pending (the store was reset: the changelog has it all)."""
        for pending in self.pending.values():
            pending.clear()
        self._offsets.clear()
        self._keys = 0
        self._since = None
