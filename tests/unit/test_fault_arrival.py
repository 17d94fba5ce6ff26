"""The fault harness's bound for records of an idle input partition that resumes
(tests/faults/arrival.py), and the late events it lets :meth:`System.late_events` name."""

from __future__ import annotations

from pathlib import Path

from tests.faults.arrival import resumed_fronts
from tests.faults.harness import Late, System
from tests.oracle import RawEvent

IDLE_S = 10.0


def test_a_partition_silent_for_the_idle_timeout_resumes_behind_the_others() -> None:
    # partition 0 publishes on; partition 1 was silent 12 s and its records come 0.13 s late
    acked = {(0, 0): 0.0, (1, 0): 0.0, (0, 1): 12.0, (0, 2): 12.05, (1, 1): 12.13, (1, 2): 12.14}
    times = {(0, 0): 100, (1, 0): 100, (0, 1): 5_000, (0, 2): 9_000, (1, 1): 4_000, (1, 2): 8_000}
    fronts = resumed_fronts(acked, times, IDLE_S)
    assert fronts == {(1, 1): 9_000, (1, 2): 9_000, (0, 1): 100, (0, 2): 100}


def test_no_resumption_within_the_idle_timeout_nor_at_a_partitions_first_record() -> None:
    acked = {(0, 0): 0.0, (0, 1): 9.9, (1, 0): 9.95}
    times = {(0, 0): 100, (0, 1): 5_000, (1, 0): 50}
    assert resumed_fronts(acked, times, IDLE_S) == {}


def test_the_front_counts_reports_up_to_the_slack_after_the_resumption() -> None:
    acked = {(0, 0): 0.0, (1, 0): 0.0, (1, 1): 20.0, (0, 1): 20.03, (0, 2): 20.2}
    times = {(0, 0): 1, (1, 0): 1, (1, 1): 2, (0, 1): 300, (0, 2): 900}
    assert resumed_fronts(acked, times, IDLE_S, slack_s=0.05)[(1, 1)] == 300
    assert resumed_fronts(acked, times, IDLE_S, slack_s=0.0)[(1, 1)] == 1


def test_a_later_resumption_replaces_the_front_and_untimed_records_break_silence() -> None:
    acked = {(0, 0): 0.0, (1, 0): 0.0, (0, 1): 11.0, (1, 1): 11.1, (1, 2): 15.0, (0, 2): 30.0}
    acked |= {(1, 3): 30.1}
    times = {(0, 0): 1, (1, 0): 1, (0, 1): 70, (1, 1): 60, (0, 2): 99, (1, 3): 80}
    fronts = resumed_fronts(acked, times, IDLE_S)
    # (1, 2) is an invalid record (no event time) read 3.9 s after (1, 1): no resumption
    assert fronts[(1, 1)] == fronts[(1, 2)] == 70
    assert fronts[(1, 3)] == 99


def test_late_events_names_the_resumed_partitions_events_behind_the_others() -> None:
    system = System(env={}, workdir=Path("."))
    events = [
        RawEvent("a", "a0", 1_000, None),
        RawEvent("b", "b0", 1_000, None),
        RawEvent("a", "a1", 90_000, None),
        RawEvent("b", "b1", 20_000, None),
    ]
    where = {(0, 0): ("a", "a0"), (1, 0): ("b", "b0"), (0, 1): ("a", "a1"), (1, 1): ("b", "b1")}
    system.inputs.update(where)
    system.calls.update(dict.fromkeys(where, 1))
    system.acked.update({(0, 0): 0.0, (1, 0): 0.0, (0, 1): 12.0, (1, 1): 12.2})
    assert system.late_events(events, 5_000, IDLE_S) == [Late("b", 20_000, 90_000)]
    assert system.late_events(events, 5_000, 30.0) == []
