"""Delivery reports of the records a producer writes without keeping anything of them.

confluent-kafka calls a record's delivery callback once per record it produced (for the worker,
one per changelog record and per signal). Here that callback is one compiled callable that keeps
the highest acknowledged offset per (topic, partition) and the failed records for the caller to
handle; interpreted, the call alone cost about as much as producing the record.
"""

from __future__ import annotations

from typing import Any


class DeliveryReports:
    """``reports(err, msg)``: confluent-kafka's ``on_delivery`` signature."""

    def __init__(self) -> None:
        # highest acknowledged offset per (topic, partition), for the producer's life
        self.acked: dict[tuple[str, int], int] = {}
        self.failed: list[tuple[Any, Any]] = []  # (error, message), in report order

    def __call__(self, err: Any, msg: Any) -> None:
        if err is not None:
            self.failed.append((err, msg))
            return
        topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
        if topic is not None and partition is not None and offset is not None:
            acked, tp = self.acked, (topic, partition)
            if offset > acked.get(tp, -1):
                acked[tp] = offset

    def take_failed(self) -> list[tuple[Any, Any]]:
        """The failures reported since the last call, in report order."""
        failed, self.failed = self.failed, []
        return failed
