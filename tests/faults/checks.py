"""The end of every fault scenario: caught up, equal to the oracle, nothing lost, one row."""

from __future__ import annotations

import contextlib
import dataclasses
import time

import orjson

from schemas.errors import BatchDecodeError
from streams.topics import Topics
from streams.worker.codecs import decode_batch
from tests.faults import Row, System, build_ledger, compare, wait_until
from tests.faults.conftest import ROWS, Workload, expected_gauges
from tests.faults.ledger import read_topic
from tests.faults.verdict import Staleness, event_clock_now, judge, rules_of
from tests.oracle import expected_signals

CATCH_UP_S = 240.0
SETTLE_S = 90.0
WALL_MARGIN_S = 3.0  # wall clock: no trigger within twice this of the check


def aggregates_mismatch(system: System, load: Workload) -> list[str]:
    total = system.summed()
    if total.get("engagement_partitions_owned") != 4.0:
        return [f"partitions owned: {total.get('engagement_partitions_owned')}"]
    today, last_complete = load.days(round(system.settings.allowed_lateness * 1000))
    return compare(total, expected_gauges(load.oracle(system), today, last_complete))


def replay(load: Workload) -> str:
    """How to run a failed event-clock scenario on the same input again."""
    return f" (replay: ENGAGEMENT_FAULT_END_MS={load.end_ms})" if load.clock == "event" else ""


def wait_for_quiet_clock(system: System, load: Workload) -> None:
    """Wall clock: until no trigger the oracle knows lies within ``2 * WALL_MARGIN_S`` of the
    moment of the check (the check's ``now`` is ``WALL_MARGIN_S`` before it), so that what is
    due and what is not cannot depend on a signal still on its way."""
    if load.clock != "wall":
        return
    rules, events = rules_of(system.settings), load.raw_events(system)
    margin = round(WALL_MARGIN_S * 1000)
    while True:
        now = int(time.time() * 1000)
        near = [
            s.at_ms
            for s in expected_signals(events, rules, now + 3 * margin).signals
            if s.at_ms > now - 2 * margin
        ]
        if not near:
            return
        time.sleep((max(near) + 2 * margin - now) / 1000)


def finish(system: System, load: Workload, scenario: str, fault_over: float, notes: str) -> Row:
    """Wait for the system to catch up and settle; check it against the oracle and the topics;
    record the results row (recovery measured from ``fault_over``, a monotonic time)."""
    system.wait_published()
    wait_until(system.ingest_caught_up, CATCH_UP_S, "ingest committed to the end of the input")
    last: list[str] = []

    def equal() -> bool:
        last[:] = aggregates_mismatch(system, load)
        return not last

    with contextlib.suppress(AssertionError):
        wait_until(equal, SETTLE_S, "aggregates equal to the oracle", every=1.0)
    recovery = time.monotonic() - fault_over
    wait_for_quiet_clock(system, load)
    rules = rules_of(system.settings)
    events = load.raw_events(system)
    late = system.late_events(events, rules.lateness_ms, system.settings.idle_timeout)
    settings = system.settings
    staleness = Staleness(round(settings.signal_max_age * 1000), settings.clock, load.start_ms)
    for _ in range(6):  # signals of the last deadlines may still be on their way
        if load.clock == "wall":
            now = int(time.time() * 1000) - round(WALL_MARGIN_S * 1000)
        else:
            now = event_clock_now(max(e.timestamp_ms for e in events), rules)
        ledger = build_ledger(system.settings)
        verdict = judge(ledger.signals, events, rules, now, late=late, staleness=staleness)
        if verdict.ok and ledger.signal_check().ok:
            break
        time.sleep(5)
    accounts, signals = ledger.account(system.inputs), ledger.signal_check()
    redelivered = ledger.by_user_copies - len(ledger.valid_ids)
    quarantined = len(ledger.quarantined)
    config = "wall-rocksdict" if load.clock == "wall" else "event-memory"
    row = Row(scenario, config, accounts, signals, verdict, not last, recovery, notes, quarantined)
    ROWS.append(row)
    if not verdict.ok:  # the evidence, for reading the differences offline
        dump = system.workdir / "signals.json"
        dump.parent.mkdir(parents=True, exist_ok=True)
        dump.write_bytes(
            orjson.dumps(
                {
                    "now": now,
                    "events": [dataclasses.astuple(e) for e in events],
                    "late": [dataclasses.astuple(e) for e in late],
                    "signals": [s.to_dict() for s in ledger.signals],
                    "settings": system.env,
                    "inputs": [
                        [*o, *(i or ("", "")), system.calls[o], system.acked.get(o)]
                        for o, i in system.inputs.items()
                    ],
                    "by_user": by_user_summary(system),
                }
            )
        )
        print(f"signals and events written to {dump}")
    print(f"{scenario}: {row.markdown()} (by_user copies beyond distinct ids: {redelivered})")
    assert not last, f"gauges differ from the oracle: {last[:10]}{replay(load)}"
    assert accounts.balanced, (
        f"input not accounted for: {accounts}, {ledger.headerless} dead \
letters without engagement.error.* headers"
    )
    assert set(ledger.quarantined) == ledger.undecodable, (
        f"unreadable by_user records {sorted(ledger.undecodable)[:10]}, "
        f"quarantined {sorted(ledger.quarantined)[:10]}"
    )
    assert not signals.inconsistent, f"signal ids with different contents: {signals.inconsistent}"
    again = replay(load)
    missing = verdict.missing
    assert not missing, f"{len(missing)} signals missing: {missing[:8]}{again}"
    assert not verdict.extra, f"{len(verdict.extra)} signals extra: {verdict.extra[:8]}{again}"
    assert not verdict.unidentified, f"ids of no event: {verdict.unidentified[:8]}{again}"
    return row


def by_user_summary(system: System) -> list[list[object]]:
    """(partition, offset, record time, watermark, source, events, oldest, newest) of every
    events.by_user record: where the clock was when each event was read."""
    out: list[list[object]] = []
    for msg in read_topic(system.settings, Topics.of(system.settings).by_user):
        try:
            wm, src, evs = decode_batch(msg.value())
        except BatchDecodeError:
            continue
        times = [e.timestamp_ms for e in evs] or [0]
        out.append([msg.partition(), msg.offset(), msg.timestamp()[1], wm, src, len(evs),
                    min(times), max(times)])  # fmt: skip
    return out


def progress(system: System, at_least: int, timeout: float = 120.0) -> None:
    """Wait until ingest committed ``at_least`` input messages (the stream is moving)."""
    wait_until(lambda: system.ingest_position()[0] >= at_least, timeout, f"{at_least} committed")
