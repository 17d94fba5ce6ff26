"""Faust's aiokafka consumer, with stream partitions that have no committed offset rewound.

After a rebalance Faust seeks every assigned partition "to its committed offset" through
aiokafka's ``seek_to_committed``, which only seeks when the committed offset is a number above
0. A partition with no committed offset (or 0) keeps whatever position the fetcher reached
meanwhile. During a takeover that is not the beginning: Faust resumes the fetch flow to read
the changelogs, the new partition's first records are fetched, and the ones that arrive while
the flow is suspended are dropped, yet the position has moved past them. The worker then
starts the partition in the middle, and the records before (whose state the killed worker had
not made durable) are never folded: users missing from the state, found by the takeover fault
scenario. Here such partitions are sought back to offset 0 (which ``auto_offset_reset=earliest``
turns into the log start if 0 is gone), before the flow resumes, so nothing is skipped.

And the fetch waits at most :data:`FETCH_MAX_WAIT_MS` at the broker (Faust fixes 1500 ms).
aiokafka keeps one fetch in flight per broker, for the partitions that have nothing buffered
when it is sent. When that is only partitions without new records (Faust's leader topic, which
never gets one), the broker holds it the whole wait, and records of every other partition on
that broker wait with it: the bench's intermittent 1.4-1.9 s lag between a by_user record and
its fold.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Set
from typing import Any

import aiokafka
import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, ConsumerT

FETCH_MAX_WAIT_MS = 100  # how long a fetch of quiet partitions can hold up the others


def partitions_to_rewind(
    assigned: Iterable[TP], committed: Mapping[TP, int | None], changelogs: Set[str]
) -> list[TP]:
    """The stream partitions aiokafka's ``seek_to_committed`` left where the fetcher was: no
    committed offset, or 0 (changelog partitions are positioned by the recovery)."""
    return sorted(tp for tp in assigned if tp.topic not in changelogs and not committed.get(tp))


class RewindingConsumer(faust_aiokafka.Consumer):
    """aiokafka consumer whose :meth:`perform_seek` never leaves a stream partition ahead, and
    whose fetches are held at most :data:`FETCH_MAX_WAIT_MS`."""

    async def perform_seek(self) -> None:
        await super().perform_seek()
        changelogs = self.app.tables.changelog_topics
        for tp in partitions_to_rewind(self.assignment(), self._committed_offset, changelogs):
            await self.seek(tp, 0)  # also forgets the read offset: the records are not "seen"

    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return PromptConsumerThread(self, loop=self.loop, beacon=self.beacon)


class PromptConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's aiokafka consumer thread, with fetches held at most :data:`FETCH_MAX_WAIT_MS`."""

    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        # read by AIOKafkaConsumer.start() when it makes the fetcher; no constructor argument
        # reaches it through Faust
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        return consumer


class RewindingApp(faust.App):
    """A Faust app that uses :class:`RewindingConsumer` on the ``kafka://`` transport."""

    def _new_consumer(self) -> ConsumerT:
        return RewindingConsumer(
            self.transport,
            callback=self.topics.on_message,
            on_partitions_revoked=self._on_partitions_revoked,
            on_partitions_assigned=self._on_partitions_assigned,
            beacon=self.beacon,
            loop=self.transport.loop,
        )
