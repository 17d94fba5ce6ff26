"""The membership lease (:mod:`agents.logic.lease`) fed by Faust's aiokafka group coordinator.

aiokafka keeps the time of its last successful heartbeat in a local variable of its heartbeat
routine, so the coordinator's ``_do_heartbeat`` is wrapped to record it; a lost membership is
the coordinator's generation reset (after UnknownMemberId or IllegalGeneration). Both are
private aiokafka APIs (0.12): if they cannot be found the lease is not enforced (logged), and
the worker behaves as before.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from agents.logic.lease import Lease, lease_state
from agents.logic.partitioning import partition_for

log = logging.getLogger(__name__)


def _now_ms() -> float:
    return time.monotonic() * 1000


class MembershipLease:
    """Confirmed by heartbeats and assignments; read from the worker's event loop."""

    def __init__(self, valid_ms: float) -> None:
        self.valid_ms = valid_ms
        self.confirmed_ms = _now_ms()
        self._coordinator: Any = None
        self.enforced = False
        self._was = Lease.HELD

    def confirm(self) -> None:
        self.confirmed_ms = _now_ms()

    def install(self, app: Any) -> None:
        """Hook the coordinator of ``app``'s consumer (once; after the first assignment)."""
        if self._coordinator is not None:
            return
        try:
            coordinator = app.consumer._thread._ensure_consumer()._coordinator
            heartbeat: Callable[[], Awaitable[bool]] = coordinator._do_heartbeat
            int(coordinator.generation)  # present, or AttributeError
        except Exception as exc:
            log.warning("membership lease not enforced: no aiokafka coordinator (%r)", exc)
            self._coordinator = False
            return

        async def recorded() -> bool:
            ok = await heartbeat()
            if ok:
                self.confirm()  # a float store: safe from the consumer's thread
            return ok

        coordinator._do_heartbeat = recorded
        self._coordinator = coordinator
        self.enforced = True

    def state(self) -> Lease:
        if not self.enforced:
            return Lease.HELD
        member = self._coordinator.generation >= 0
        state = lease_state(_now_ms(), self.confirmed_ms, self.valid_ms, member)
        if state is not self._was:  # logged on each change, for operators and fault tests
            self._was = state
            log.warning("membership lease %s", state.value)
        return state

    def held(self) -> bool:
        return self.state() is Lease.HELD


Signals = list[tuple[str, bytes, dict[str, Any]]]
Changes = list[tuple[int, bytes, bytes | None]]


def still_owned(
    signals: Signals, changes: Changes, owned: Any, partitions: int
) -> tuple[Signals, Changes]:
    """What of a group may still be produced once the lease is held again: nothing of a
    partition revoked meanwhile (its new owner decides again from the changelog). A worker
    that owns every partition keeps everything, without hashing each signal's key."""
    if len(owned) >= partitions:
        return signals, changes
    return (
        [s for s in signals if partition_for(s[1], partitions) in owned],
        [c for c in changes if c[0] in owned],
    )


class MembershipLost(RuntimeError):
    """A group found the membership lost: the worker stops (its input is read again)."""
