"""Where the event clock may have been when an idle input partition's records came back.

An input partition at its end for ``ENGAGEMENT_IDLE_TIMEOUT`` whose leader confirms that end
stops holding the event clock (README, "Idle means confirmed idle"), as Flink's
``withIdleness``: the other partitions' events move it on alone. Records that then reach the
idle partition can lie behind that clock, and nothing a consumer can ask tells it they are on
their way. In one run of the leader-kill scenario the ingest read a publish call's records for
one input partition about 0.15 s after the other partitions' of the same call, and its clock
was by then past 1,744 of those 2,106 events (1.7 days of the compressed event time past
their median); by the ingest's rules that takes a confirmation that the partition was at its
end, so they reached the broker late (the returning node was most likely taking the
partition's leadership back).

The bound is the harness's own view of when records became readable, not the system's: the
time each producer delivery report arrived. The harness publishes with ``acks=all``, so a
record's report is sent when the high watermark passes it, the moment it becomes readable
(and the broker's confirmation answers for the high watermark). So a partition *resumes* when
a record of it is reported at least the idle timeout after the one before it on the same
partition; until the partition's next resumption, its records may be behind the newest event
time reported on the other partitions before the resumption. ``ACK_SLACK_S`` allows for the
time the reports wait in the client before the harness sees them.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping
from itertools import accumulate

from tests.faults.ledger import Offset

ACK_SLACK_S = 0.05


def resumed_fronts(
    acked: Mapping[Offset, float],
    times: Mapping[Offset, int],
    idle_s: float,
    slack_s: float = ACK_SLACK_S,
) -> dict[Offset, int]:
    """For each record of a partition that resumed after ``idle_s`` of silence (``acked``:
    monotonic seconds of each record's delivery report): the newest event time (``times``:
    the records that have one) reported on the other partitions before the resumption,
    ``slack_s`` included. A partition's first record ever is no resumption."""
    by_partition: dict[int, list[tuple[int, float]]] = {}
    for (partition, offset), at in acked.items():
        by_partition.setdefault(partition, []).append((offset, at))
    reported = {p: _reported(p, rows, times) for p, rows in by_partition.items()}
    fronts: dict[Offset, int] = {}
    for partition, rows in by_partition.items():
        rows.sort()
        front, before = 0, None
        for offset, at in rows:
            if before is not None and at - before >= idle_s - slack_s:
                others = (_newest(r, at + slack_s) for q, r in reported.items() if q != partition)
                front = max(others, default=0)
            if front:
                fronts[(partition, offset)] = front
            before = at
    return fronts


Reported = tuple[list[float], list[int]]  # report times ascending, newest event time up to each


def _reported(
    partition: int, rows: list[tuple[int, float]], times: Mapping[Offset, int]
) -> Reported:
    timed = sorted((at, times[(partition, o)]) for o, at in rows if (partition, o) in times)
    return [at for at, _ in timed], list(accumulate((ms for _, ms in timed), max))


def _newest(reported: Reported, until: float) -> int:
    ats, newest = reported
    index = bisect_right(ats, until)
    return newest[index - 1] if index else 0
