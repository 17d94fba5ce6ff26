"""The membership lease: a stalled worker decides and produces nothing for its partitions."""

from __future__ import annotations

from typing import Any

from agents.logic.lease import Lease, lease_state
from agents.logic.partitioning import partition_for
from streams.worker.lease import MembershipLease, still_owned


def test_the_lease_holds_only_while_membership_was_confirmed_recently() -> None:
    assert lease_state(10_000, confirmed_ms=8_000, valid_ms=3_000, member=True) is Lease.HELD
    assert lease_state(10_000, confirmed_ms=8_000, valid_ms=3_000, member=False) is Lease.HELD
    assert lease_state(11_000, confirmed_ms=8_000, valid_ms=3_000, member=True) is Lease.UNSURE
    assert lease_state(11_000, confirmed_ms=8_000, valid_ms=3_000, member=False) is Lease.LOST


class FakeFuture:
    def __init__(self) -> None:
        self.set = False

    def done(self) -> bool:
        return self.set


class FakeCoordinator:
    def __init__(self) -> None:
        self.generation = 3
        self._rejoin_needed_fut = FakeFuture()
        self.ok = True

    async def _do_heartbeat(self) -> bool:
        return self.ok


class FakeApp:
    def __init__(self, coordinator: Any) -> None:
        consumer = type("C", (), {"_coordinator": coordinator})()
        thread = type("T", (), {"_ensure_consumer": lambda self: consumer})()
        self.consumer = type("K", (), {"_thread": thread})()


def test_a_stall_past_the_lease_stops_the_worker_until_a_heartbeat_succeeds() -> None:
    import asyncio

    coordinator = FakeCoordinator()
    lease = MembershipLease(valid_ms=3_000)
    lease.install(FakeApp(coordinator))
    assert lease.enforced and lease.held()
    lease.confirmed_ms -= 5_000  # the process was stopped for 5 s
    assert not lease.held()
    assert lease.state() is Lease.UNSURE  # wait for the next heartbeat
    coordinator.ok = True
    assert asyncio.run(coordinator._do_heartbeat()) and lease.held()  # still a member
    lease.confirmed_ms -= 5_000
    coordinator.ok = False
    assert not asyncio.run(coordinator._do_heartbeat())
    coordinator.generation = -1  # UnknownMemberId: aiokafka resets the generation
    assert lease.state() is Lease.LOST


def test_without_a_coordinator_the_lease_is_not_enforced() -> None:
    lease = MembershipLease(valid_ms=3_000)
    lease.install(object())
    lease.confirmed_ms -= 60_000
    assert not lease.enforced and lease.held()


def test_only_what_belongs_to_partitions_still_owned_is_produced() -> None:
    keys = [f"user-{i}".encode() for i in range(20)]
    signals: list[tuple[str, bytes, dict[str, Any]]] = [("dormant", key, {}) for key in keys]
    changes: list[tuple[int, bytes, bytes | None]] = [
        (partition_for(key, 4), key, b"state") for key in keys
    ]
    kept_signals, kept_changes = still_owned(signals, changes, {0, 2}, 4)
    assert {partition_for(k, 4) for _, k, _ in kept_signals} == {0, 2}
    assert {p for p, _, _ in kept_changes} == {0, 2}
    assert len(kept_signals) == len(kept_changes) < len(keys)
    assert still_owned(signals, changes, {0, 1, 2, 3}, 4) == (signals, changes)
