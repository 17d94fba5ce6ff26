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
"""

from __future__ import annotations

from collections.abc import Mapping

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, ConsumerT


class Consumer(faust_aiokafka.Consumer):
    """aiokafka consumer whose :meth:`perform_seek` never leaves a stream partition ahead."""

    async def perform_seek(self) -> None:
        committed = await self.seek_to_committed()
        changelogs = self.app.tables.changelog_topics
        for tp, offset in committed.items():
            if not offset and tp.topic not in changelogs:
                await self._seek(tp, 0)
        self._update_offsets(committed)

    def _update_offsets(self, committed: Mapping[TP, int | None]) -> None:
        """What Faust's ``perform_seek`` records after seeking (unchanged)."""
        self._read_offset.update(
            {
                tp: offset if offset is not None and offset >= 0 else None
                for tp, offset in committed.items()
            }
        )
        self._committed_offset.update(
            {tp: offset or None for tp, offset in committed.items() if offset is not None}
        )


class App(faust.App):
    """A Faust app that uses :class:`Consumer` on the ``kafka://`` transport."""

    def _new_consumer(self) -> ConsumerT:
        return Consumer(
            self.transport,
            callback=self.topics.on_message,
            on_partitions_revoked=self._on_partitions_revoked,
            on_partitions_assigned=self._on_partitions_assigned,
            beacon=self.beacon,
            loop=self.transport.loop,
        )
