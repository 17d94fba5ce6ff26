"""Whether a worker may still act for the partitions it was assigned: a lease on membership.

A worker that stalls (a GC pause, SIGSTOP, a network partition) longer than the consumer
group's session timeout has been replaced by the time it runs again, but its event loop does
not know yet: a deadline tick or a group commit may run before the consumer's next heartbeat
finds out. So the worker acts only while its membership was *confirmed* recently (a successful
heartbeat, or an assignment), within ``valid_ms`` — less than the session timeout, since the
broker counts from when it received the heartbeat and a record takes time to land.

Three states: ``HELD`` (act), ``UNSURE`` (not confirmed lately, but the coordinator has not
said otherwise: wait for the next heartbeat), ``LOST`` (not confirmed lately, and the
coordinator reset the membership: whatever was decided since the last confirmation must not
be produced). A rebalance in progress is not a reason to stop: the member still owns its
partitions until it gives them up, and Faust waits for its in-flight records before it does.
Time is passed in (monotonic ms).
"""

from __future__ import annotations

from enum import Enum


class Lease(Enum):
    HELD = "held"
    UNSURE = "unsure"
    LOST = "lost"


def lease_state(now_ms: float, confirmed_ms: float, valid_ms: float, member: bool) -> Lease:
    """``member``: the coordinator still has a generation for this worker."""
    if now_ms - confirmed_ms < valid_ms:
        return Lease.HELD
    return Lease.UNSURE if member else Lease.LOST
