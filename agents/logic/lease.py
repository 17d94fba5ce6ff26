"""Whether a worker may still act for the partitions it was assigned: a lease on membership.

A worker that stalls (a GC pause, SIGSTOP, a network partition) longer than the consumer
group's session timeout has been replaced by the time it runs again, but its event loop does
not know yet: a deadline tick or a group commit may run before the consumer's next heartbeat
finds out. So the worker acts only while its membership was *confirmed* recently (a successful
heartbeat, or an assignment), within ``valid_ms`` — less than the session timeout, since the
broker counts from when it received the heartbeat and a record takes time to land — and while
no rebalance is pending. Wall time is passed in (monotonic, in ms).
"""

from __future__ import annotations


def lease_held(now_ms: float, confirmed_ms: float, valid_ms: float, rebalancing: bool) -> bool:
    """True if the worker may fire deadlines and produce signals and changelog records."""
    return not rebalancing and now_ms - confirmed_ms < valid_ms
