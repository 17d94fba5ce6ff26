"""The worker's moving parts around the pure engine: partitions, delivery, snapshots.

The agents call :meth:`Runtime.on_record` (or ``on_events``) and :meth:`Runtime.tick`; both run
the engine synchronously (so no other coroutine sees a half-updated partition). What it produced
is made durable in groups — signals first, then the changelog — while the next records are
folded.
Faust acknowledges an input record only once its group is in Kafka, so a committed offset never
points past state that is not durable, and a crash in between re-emits the same signals (same
ids). A record that cannot be read is quarantined unfolded; a state that cannot be read, a group
that cannot be made durable within ``ENGAGEMENT_DURABLE_TIMEOUT`` or a fold that raises stops
the worker (:mod:`streams.worker.quarantine`), and records of partitions the engine does not own
are never acknowledged.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import faust
from orjson import dumps

from agents.logic.engine import Engine
from agents.logic.engine_types import Output
from agents.logic.lease import Lease
from schemas.errors import BatchDecodeError, StateDecodeError
from schemas.records import EventLike
from streams.settings import Settings
from streams.topics import STATE_TABLE, Topics
from streams.worker.changelog import read_partitions
from streams.worker.codecs import decode_record
from streams.worker.delivery import Sink
from streams.worker.engine_setup import engine_config
from streams.worker.lease import MembershipLease, MembershipLost, still_owned
from streams.worker.metrics import Metrics, Published, published_of
from streams.worker.quarantine import Quarantine, hard_exit, last_offset_of, unreadable_state
from streams.worker.store import StateTable

__all__ = ["Runtime"]
log = logging.getLogger(__name__)
Ack = Callable[[], Awaitable[Any]]
# A group starts as soon as the one before it is durable (at once when none is in flight), so
# it holds what arrived meanwhile: small under light load (latency), large under heavy load
# (throughput). While one is in flight, folding goes on up to this many events or records ...
GROUP_EVENTS = 20_000
GROUP_RECORDS = 1_024  # ... and then waits for it (backpressure)
STALLED_AFTER_S = 10.0  # /readyz: 503 once a group is in flight this long (or half the timeout)


class Runtime:
    """Owns the engine's partitions and makes its output durable."""

    def __init__(
        self, settings: Settings, metrics: Metrics, deliverer: Sink, app: faust.App
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.deliverer = deliverer
        self.table = StateTable(
            app,
            name=STATE_TABLE,
            beacon=app.tables.beacon,
            partitions=settings.partitions,
            key_type=bytes,
            value_type=bytes,
            help="Per-user engagement state (compact binary, see agents/logic/state.py).",
            on_partitions=self.on_partitions,
            restorer=functools.partial(read_partitions, settings),
            write_back=(settings.state_write_back, max(1, settings.state_cache)),
        )
        app.tables.add(self.table)
        self.engine = Engine(engine_config(settings))
        self._app = app
        self.lease = MembershipLease(settings.session_timeout * 1000 / 2)
        self.ready = asyncio.Event()
        self.published: Published | None = None
        self._signals: list[tuple[str, bytes, dict[str, Any]]] = []
        self._acks: list[Ack] = []
        self._group_events = 0
        self._group_lock = asyncio.Lock()
        self._in_flight: asyncio.Task[None] | None = None  # the group being made durable
        self._flusher: asyncio.Task[None] | None = None
        self._chained: asyncio.Task[None] | None = None  # the group started by the one before
        self.processed_until: dict[int, int] = {}  # by_user partition -> next offset
        self.topics = Topics.of(settings)
        self._signal_topics = self.topics.signals
        self.quarantine = Quarantine(self.topics.quarantine, deliverer, metrics)
        self.failure: str | None = None  # why the worker is stopping (fail-stop)
        self.stopping = False
        self.exit: Callable[[str], None] = hard_exit  # tests record instead of exiting
        #: (changelog partition, key) -> offset of the key's newest changelog record
        self.locate: Callable[[int, bytes], int | None] = functools.partial(
            last_offset_of, settings, self.topics.changelog
        )
        self._group_records: dict[int, tuple[int, int]] = {}  # partition -> first, last offset
        self._in_flight_since: float | None = None
        self._unowned_logged: set[int] = set()

    # -- partitions (called by the store after recovery) ---------------------------------------
    def on_partitions(
        self, active: set[int], standby: set[int], changed: frozenset[int] = frozenset()
    ) -> None:
        """Faust awaits this (via the store) with ``asyncio.wait`` and never looks at an
        exception raised here, so a partition that cannot be taken over stops the worker from
        here, before Faust resumes its stream partitions.

        ``changed`` partitions were written by recovery: kept here across a rebalance this
        worker missed (paused past its session while another took them over), they are
        rebuilt from the store, not served from what was built before; their changes still
        on the way to the changelog are carried over, read over the store."""
        if self.failure is not None:
            return
        self.lease.install(self._app)
        self.lease.confirm()  # an assignment confirms the membership
        owned = set(self.engine.partitions)
        stale = owned & changed
        if stale:
            log.info("partitions %s changed while away: rebuilding them", sorted(stale))
        in_flight = {number: self.engine.partitions[number].flushing for number in stale}
        for number in sorted((owned - active) | stale):
            self.engine.revoke(number)
        owned -= stale
        started = time.monotonic()
        for number in sorted(active - owned):
            store = self.table.partition_store(number)
            try:
                self.engine.assign(number, store, in_flight.get(number))
            except StateDecodeError as exc:
                self.fail_stop(self._unreadable_state(number, exc))
                return
            except Exception as exc:
                self.fail_stop(f"cannot take over partition {number}: {exc!r}")
                return
        if active - owned:
            log.info(
                "assigned partitions %s (rebuilt in %.2fs)",
                sorted(active - owned),
                time.monotonic() - started,
            )
        self.ready.set()
        self.refresh_snapshot()

    # -- work --------------------------------------------------------------------------------
    async def on_record(self, message: Any, ack: Ack) -> None:
        """One ``events.by_user`` record (a Faust message): decoded whole first, then folded,
        and ``ack`` runs once what it produced is durable. One that cannot be read is
        quarantined (within ``ENGAGEMENT_DURABLE_TIMEOUT``) with none of its events folded;
        any other failure stops the worker, the record unacknowledged."""
        partition, offset = message.partition, message.offset
        if not self._owns(partition):
            return
        try:
            try:
                watermark, source, events, frontier = decode_record(message.value)
            except BatchDecodeError as exc:
                timeout = self.settings.durable_timeout
                await asyncio.wait_for(self.quarantine.put(message, exc), timeout)
                await ack()
            else:
                if frontier is not None:
                    wall = int(time.time() * 1000)
                    self.engine.observe_frontier(partition, source, frontier, wall)
                if watermark <= 0 and not events:
                    source = ""  # a frontier-only record: no news for the event clock
                await self.on_events(partition, events, watermark, source, ack, offset=offset)
        except Exception as exc:
            why = "timed out" if isinstance(exc, TimeoutError) else repr(exc)
            self.fail_stop(f"{message.topic}[{partition}]@{offset} failed ({why}); not acked")
            return
        self.processed_until[partition] = offset + 1

    def _owns(self, partition: int) -> bool:
        """False (logged once per partition) while stopping or for a partition not taken over:
        its records are left unacknowledged for their owner, or for this worker's restart."""
        if self.failure is None and partition in self.engine.partitions:
            return True
        if partition not in self._unowned_logged and self.failure is None:
            self._unowned_logged.add(partition)
            log.error("records of partition %d, which is not taken over, are left", partition)
        return False

    async def on_events(
        self,
        partition: int,
        events: Sequence[EventLike],
        watermark: int = 0,
        source: str = "",
        ack: Ack | None = None,
        *,
        offset: int = -1,
    ) -> None:
        """Fold one input record's events; its ``ack`` runs once what it produced is durable.
        A record of a partition the engine does not own is neither folded nor acknowledged
        (its owner, or this worker after a restart, reads it again)."""
        if not self._owns(partition):
            return
        wall = int(time.time() * 1000)
        out = self.engine.process(partition, events, wall, watermark, source)
        if events:
            self.metrics.observe_folded(out.newest_ms, wall)
        self._pending(out)
        if ack is not None:
            self._acks.append(ack)
            if offset >= 0:
                first, _ = self._group_records.get(partition, (offset, offset))
                self._group_records[partition] = (first, offset)
        self._group_events += len(events)
        if self._idle() or self._group_events >= GROUP_EVENTS or len(self._acks) >= GROUP_RECORDS:
            await self.start_group()

    def _idle(self) -> bool:
        """No group in flight or being started: one can start now without waiting."""
        in_flight = self._in_flight
        return not self._group_lock.locked() and (in_flight is None or in_flight.done())

    def start_flusher(self, interval: float) -> None:
        """Commit pending groups every ``interval`` seconds from a task of our own: Faust's
        timers end as soon as shutdown starts, but its consumer then waits for every record in
        flight to be acked, which only a group commit does."""
        if self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._flush_every(interval))

    async def stop_flusher(self, *args: Any, **kwargs: Any) -> None:
        self.stopping = True
        flusher, self._flusher = self._flusher, None
        if flusher is not None:
            flusher.cancel()
        await self.finish_groups()

    async def _flush_every(self, interval: float) -> None:
        while self.failure is None:
            await asyncio.sleep(interval)
            if self._acks or self._signals:
                await self._start_group_or_stop()

    async def tick(self) -> None:
        """Fire due deadlines, then start making everything pending durable."""
        if self.failure is not None or not self.lease.held():
            return  # a worker that may have lost its partitions decides nothing for them
        try:
            self._pending(self.engine.tick(int(time.time() * 1000)))
        except Exception as exc:
            self.fail_stop(f"firing deadlines failed: {exc!r}")
            return
        await self.start_group()

    def _pending(self, out: Output) -> None:
        self._signals.extend(out.signals)
        self.metrics.count_output(out)

    async def start_group(self) -> None:
        """Start making the pending group durable and return while that happens, so the next
        records are folded meanwhile. The group before it is waited for first: one group is in
        flight at a time, so signals, changelog records and acks keep their order."""
        async with self._group_lock:
            await self._await_in_flight()
            if self.failure is not None:
                return
            signals, self._signals = self._signals, []
            acks, self._acks = self._acks, []
            records, self._group_records = self._group_records, {}
            self._group_events = 0
            changes = self.engine.take_changes()
            if signals or changes or acks:
                deliver = self._durable_or_stop(signals, changes, acks, records)
                self._in_flight = asyncio.get_running_loop().create_task(deliver)
                self._in_flight_since = time.monotonic()

    async def finish_groups(self) -> None:
        """Make everything pending durable and wait until its input records are acked."""
        await self.start_group()
        async with self._group_lock:
            await self._await_in_flight()

    async def _await_in_flight(self) -> None:
        task = self._in_flight
        if task is not None:
            await task  # it stays in _in_flight meanwhile: a group is in flight, not idle
            if self._in_flight is task:
                self._in_flight = None

    async def _durable_or_stop(
        self,
        signals: list[tuple[str, bytes, dict[str, Any]]],
        changes: list[tuple[int, bytes, bytes | None]],
        acks: list[Ack],
        records: dict[int, tuple[int, int]],
    ) -> None:
        """:meth:`_make_durable` within ``ENGAGEMENT_DURABLE_TIMEOUT``, else stop the worker:
        the group's input records stay unacknowledged and are read again after the restart."""
        timeout = self.settings.durable_timeout
        try:
            await asyncio.wait_for(self._make_durable(signals, changes, acks), timeout)
        except Exception as exc:
            why = "timed out" if isinstance(exc, TimeoutError) else repr(exc)
            where = ", ".join(
                f"{self.topics.by_user}[{p}]@{first}..{last}"
                for p, (first, last) in sorted(records.items())
            )
            self.fail_stop(
                f"a group of {len(signals)} signal(s) and {len(changes)} state change(s) was not "
                f"made durable within {timeout:g}s ({why}); its input records "
                f"({where or 'none'}) stay unacknowledged and are read again after the restart"
            )
        finally:
            self._in_flight_since = None
        if self.failure is None and (self._acks or self._signals):
            # what arrived while this group was in flight starts at once, not on the next tick
            self._chained = asyncio.get_running_loop().create_task(self._next_group())

    async def _next_group(self) -> None:
        if self._idle():  # else a group started meanwhile (the fold found none in flight)
            await self._start_group_or_stop()

    async def _start_group_or_stop(self) -> None:
        """:meth:`start_group` from a task of our own, where nobody would see it raise."""
        try:
            await self.start_group()
        except Exception as exc:
            self.fail_stop(f"starting a group failed: {exc!r}")

    async def _make_durable(
        self,
        signals: list[tuple[str, bytes, dict[str, Any]]],
        changes: list[tuple[int, bytes, bytes | None]],
        acks: list[Ack],
    ) -> None:
        """Deliver a group's signals, then the coalesced changelog of the states that produced
        them; then write those states to the local store and ack the input records. One round
        trip per group of records instead of per record; a crash in between re-processes the
        unacked records against a store that does not have their states yet, so nothing they
        produced is lost (signals keep their ids). Until then the engine reads the group's
        states from its in-flight overlay."""
        while (lease := self.lease.state()) is Lease.UNSURE:  # stalled: wait for a heartbeat
            await asyncio.sleep(0.05)
        if lease is Lease.LOST:  # replaced while stalled: nothing decided since may be produced
            raise MembershipLost("the group membership was lost while the worker stalled")
        kept, changes = still_owned(
            signals, changes, self.engine.partitions, self.settings.partitions
        )
        if len(kept) < len(signals):  # revoked during a stall: the new owner decides again
            for kind, _, _ in (s for s in signals if s not in kept):
                self.metrics.suppressed.labels(kind, "revoked").inc()
            log.warning(
                "dropped %d signal(s) of partitions revoked meanwhile", len(signals) - len(kept)
            )
        signals = kept
        by_topic: dict[str, list[tuple[int, bytes, bytes | None]]] = {}  # in order, per topic
        for kind, key, signal in signals:  # produce_all: not produce's two Python calls each
            by_topic.setdefault(self._signal_topics[kind], []).append((-1, key, dumps(signal)))
        for signal_topic, records in by_topic.items():
            self.deliverer.produce_all(signal_topic, records)
        if signals:
            await self.deliverer.flush("signals")
        topic = self.table.changelog_topic_name
        self.deliverer.produce_all(topic, changes)
        offsets = await self.deliverer.flush("changelog") if changes else {}
        written = self.engine.mark_durable(changes)
        for (name, number), offset in offsets.items():
            if name == topic and number in written:
                self.table.persist_offset(number, offset)
        # one increment per kind, not per signal (a labelled increment is ~1.2 µs)
        for kind, n in Counter(kind for kind, _, _ in signals).items():
            self.metrics.signals.labels(kind).inc(n)
        for ack in acks:
            await ack()

    # -- stopping ----------------------------------------------------------------------------
    def fail_stop(self, reason: str) -> None:
        """Stop the worker: nothing more is folded, delivered or acknowledged."""
        if self.failure is None:
            self.failure = reason
            self.ready.clear()
            self.exit(reason)

    def readiness(self) -> tuple[bool, str]:
        """(ready, why not) for ``/readyz``: partitions taken over, not stopping, and no group
        stuck on its way to Kafka."""
        if self.failure is not None or self.stopping:
            return False, "stopping"
        if not self.ready.is_set():
            return False, "recovering"
        since = self._in_flight_since
        stalled_after = min(STALLED_AFTER_S, self.settings.durable_timeout / 2)
        if since is not None and time.monotonic() - since > stalled_after:
            return False, f"a group has not been durable for {time.monotonic() - since:.0f}s"
        return True, ""

    def _unreadable_state(self, number: int, exc: StateDecodeError) -> str:
        offset = self.locate(number, exc.key) if exc.key is not None else None
        return unreadable_state(self.table.changelog_topic_name, number, offset, exc)

    def refresh_snapshot(self) -> None:
        wall = int(time.time() * 1000)
        self.published = published_of(self.engine, wall, bool(self.settings.funnels))
