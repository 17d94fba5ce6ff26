"""The end of every fault scenario: caught up, equal to the oracle, nothing lost, one row."""

from __future__ import annotations

import contextlib
import time

from tests.faults import Row, System, build_ledger, compare, wait_until
from tests.faults.conftest import ROWS, Workload, expected_gauges

CATCH_UP_S = 240.0
SETTLE_S = 90.0


def aggregates_mismatch(system: System, load: Workload) -> list[str]:
    total = system.summed()
    if total.get("engagement_partitions_owned") != 4.0:
        return [f"partitions owned: {total.get('engagement_partitions_owned')}"]
    return compare(total, expected_gauges(load.oracle, load.today))


def finish(system: System, load: Workload, scenario: str, fault_over: float, notes: str) -> Row:
    """Wait for the system to catch up and settle; check it against the oracle and the topics;
    record the results row (recovery measured from ``fault_over``, a monotonic time)."""
    wait_until(system.ingest_caught_up, CATCH_UP_S, "ingest committed to the end of the input")
    last: list[str] = []

    def equal() -> bool:
        last[:] = aggregates_mismatch(system, load)
        return not last

    with contextlib.suppress(AssertionError):
        wait_until(equal, SETTLE_S, "aggregates equal to the oracle", every=1.0)
    recovery = time.monotonic() - fault_over
    ledger = build_ledger(system.settings)
    for _ in range(6):  # signals of the last deadlines may still be on their way
        if ledger.signal_check().ok:
            break
        time.sleep(5)
        ledger = build_ledger(system.settings)
    accounts, signals = ledger.account(system.inputs), ledger.signal_check()
    redelivered = ledger.by_user_copies - len(ledger.valid_ids)
    quarantined = len(ledger.quarantined)
    row = Row(scenario, accounts, signals, not last, recovery, notes, quarantined)
    ROWS.append(row)
    print(f"{scenario}: {row.markdown()} (by_user copies beyond distinct ids: {redelivered})")
    if signals.unexpected:
        print(f"{len(signals.unexpected)} delivered, not in the replay: {signals.unexpected[:8]}")
    assert not last, f"gauges differ from the oracle: {last[:10]}"
    assert accounts.balanced, (
        f"input not accounted for: {accounts}, {ledger.headerless} dead \
letters without engagement.error.* headers"
    )
    assert set(ledger.quarantined) == ledger.undecodable, (
        f"unreadable by_user records {sorted(ledger.undecodable)[:10]}, "
        f"quarantined {sorted(ledger.quarantined)[:10]}"
    )
    assert not signals.missing, f"{len(signals.missing)} expected signals missing"
    assert not signals.inconsistent, f"signal ids with different contents: {signals.inconsistent}"
    return row


def progress(system: System, at_least: int, timeout: float = 120.0) -> None:
    """Wait until ingest committed ``at_least`` input messages (the stream is moving)."""
    wait_until(lambda: system.ingest_position()[0] >= at_least, timeout, f"{at_least} committed")
