from __future__ import annotations

from agents.logic.watermarks import (
    InputWatermark,
    SourceWatermarks,
    commit_metadata,
    covers_all,
    newest_of,
    source_id,
)

H = 3_600_000


IDLE = 30_000
END = 7  # the offset an end-of-partition event gave


def test_the_slowest_active_partition_holds_the_watermark() -> None:
    wm = InputWatermark(lateness_ms=H, idle_ms=IDLE)
    wm.assign(["p0", "p1"])
    wm.observe("p0", 100 * H)
    assert wm.value(0) == 0  # p1 has shown nothing yet: it may still hold old events
    wm.observe("p1", 10 * H)
    assert wm.value(0) == 9 * H
    wm.observe("p0", 200 * H)
    assert wm.value(0) == 9 * H


def test_an_idle_partition_does_not_hold_the_others_back() -> None:
    wm = InputWatermark(lateness_ms=H, idle_ms=IDLE)
    wm.assign(["p0", "p1"])
    wm.observe("p0", 50 * H)
    wm.reached_end("p1", wall_ms=1_000, end_offset=END)
    assert wm.value(1_000 + IDLE) == 0  # idle, but the broker has not confirmed its end
    wm.confirmed(wm.ask(1_000 + IDLE), ["p1"])
    assert wm.value(1_000 + IDLE) == 49 * H  # p1 at its end for the idle timeout
    wm.reached_end("p0", wall_ms=40_000, end_offset=END)
    wm.confirmed(wm.ask(40_000 + IDLE), ["p0", "p1"])
    assert wm.value(40_000 + IDLE) == 49 * H
    wm.observe("p1", 20 * H)  # new data on p1 (older): the watermark never goes back
    assert wm.value(80_000) == 49 * H


def test_reaching_the_end_is_not_idleness() -> None:
    """A fast producer's partitions are read unevenly: one that is momentarily caught up still
    has events to come, which may be older than the partitions read further."""
    wm = InputWatermark(lateness_ms=H, idle_ms=IDLE)
    wm.assign(["p0", "p1"])
    wm.observe("p0", 10 * H)
    wm.observe("p1", 90 * H)
    wm.reached_end("p0", wall_ms=0, end_offset=END)
    wm.reached_end("p1", wall_ms=0, end_offset=END)
    assert wm.value(IDLE - 1) == 9 * H  # both at their end, neither idle yet: the minimum
    wm.observe("p0", 12 * H)  # p0's producer was only behind
    assert wm.value(IDLE + 5_000) == 11 * H
    wm.reached_end("p0", wall_ms=IDLE + 5_000, end_offset=END)
    wm.confirmed(wm.ask(2 * IDLE + 5_000), ["p0", "p1"])
    assert wm.value(2 * IDLE + 5_000) == 89 * H  # both idle now: nothing left to wait for


def test_a_partition_with_unread_records_is_never_idle() -> None:
    wm = InputWatermark(lateness_ms=H, idle_ms=IDLE)
    wm.assign(["p0", "p1"])
    wm.observe("p0", 10 * H)
    wm.observe("p1", 90 * H)
    wm.reached_end("p0", wall_ms=0, end_offset=END)
    wm.has_unread("p0")  # its high watermark moved past our position since
    assert wm.value(10 * IDLE) == 9 * H
    assert wm.at_end() == []


def test_sources_advance_together_and_silent_ones_expire() -> None:
    sw = SourceWatermarks(timeout_ms=30_000)
    assert sw.observe("a", 100, wall_ms=0) == 100
    assert sw.observe("b", 40, wall_ms=1_000) == 100  # never backwards
    assert sw.observe("a", 500, wall_ms=2_000) == 100  # b (at 40) holds it
    assert sw.observe("b", 300, wall_ms=3_000) == 300
    assert sw.observe("a", 900, wall_ms=40_000) == 900  # b silent > 30 s: no longer counts


def test_the_clock_waits_until_the_sources_cover_every_input_partition() -> None:
    """At a start at full speed one ingest's records can reach a by_user partition long before
    the other ingest's first: the clock must not follow the first one alone."""
    a, b = source_id("a", 4, [0, 1]), source_id("b", 4, [2, 3])
    assert not covers_all([a]) and covers_all([a, b])
    sw = SourceWatermarks(timeout_ms=30_000)
    assert sw.observe(a, 500, wall_ms=0) == 0  # b's partitions unheard of: no advance
    assert sw.observe(b, 100, wall_ms=1_000) == 100
    assert sw.observe(a, 900, wall_ms=2_000) == 100
    moved = source_id("a", 4, [0, 1, 2, 3])  # b gone, a reads everything now
    assert sw.observe(moved, 950, wall_ms=40_000) == 950  # b (and a's old name) expired


def test_sources_that_do_not_name_their_partitions_count_as_before() -> None:
    assert covers_all(["legacy-source"]) and covers_all([])
    assert source_id("x", 8, [0, 7]) == "x:8:81"


def test_an_idle_partition_holds_the_clock_until_the_broker_confirms_its_end() -> None:
    """A partition whose leader is down is fetched from by nobody and looks idle while its
    events wait on the broker (a three-node cluster losing a leader): without an answer from
    the broker it holds the watermark like an active partition."""
    wm = InputWatermark(lateness_ms=H, idle_ms=IDLE)
    wm.assign(["p0", "p1"])
    wm.observe("p0", 50 * H)
    wm.observe("p1", 20 * H)
    wm.reached_end("p1", wall_ms=0, end_offset=END)
    question = wm.ask(IDLE)
    assert wm.value(10 * IDLE) == 19 * H  # no answer (the leader is down): held
    wm.confirmed(question, [])  # the broker answered for none of them
    assert wm.value(10 * IDLE) == 19 * H
    wm.confirmed(question, ["p1"])
    assert wm.value(10 * IDLE) == 49 * H


def test_the_broker_confirms_an_end_only_at_the_offset_the_end_event_gave() -> None:
    """The answer is compared with where the end-of-partition event said the end was (not the
    consumer's position, which librdkafka does not know before the first record: -1001 after
    a restart at the partition's end, even with new records waiting on the broker)."""
    wm = InputWatermark(lateness_ms=H, idle_ms=IDLE)
    wm.assign(["p0", "p1"])
    wm.observe("p0", 50 * H)
    wm.observe("p1", 20 * H)
    wm.reached_end("p1", wall_ms=0, end_offset=12)
    question = wm.ask(IDLE)
    assert wm.answer(question, {"p1": 14}) == ["p1"]  # two records past it: unread
    assert wm.at_end() == []
    assert wm.value(10 * IDLE) == 19 * H  # p1 holds the clock again
    wm.reached_end("p1", wall_ms=IDLE, end_offset=14)
    assert wm.answer(wm.ask(2 * IDLE), {"p1": 14}) == []
    assert wm.at_end() == ["p1"]
    assert wm.value(10 * IDLE) == 49 * H


def test_an_end_of_unknown_offset_or_a_stale_answer_confirms_nothing() -> None:
    wm = InputWatermark(lateness_ms=H, idle_ms=IDLE)
    wm.assign(["p0", "p1"])
    wm.observe("p0", 50 * H)
    wm.observe("p1", 20 * H)
    wm.reached_end("p1", wall_ms=0, end_offset=-1)  # the event gave no offset
    assert wm.answer(wm.ask(IDLE), {"p1": 0}) == []
    assert wm.value(10 * IDLE) == 19 * H  # held: nothing vouches for p1's end
    wm.reached_end("p0", wall_ms=0, end_offset=5)
    question = wm.ask(IDLE)
    wm.observe("p0", 60 * H)  # read after the question was asked
    wm.reached_end("p0", wall_ms=IDLE, end_offset=9)
    assert wm.answer(question, {"p0": 20}) == []  # out of date: p0 stays at its (new) end
    assert wm.at_end() == ["p1", "p0"]
    assert wm.end_offset("p0") == 9


def test_data_read_after_a_confirmation_waits_for_the_next_one() -> None:
    """Idle partitions, then a burst on all of them: the first partition read must not carry
    the clock past events of the others that are on the broker but not fetched yet."""
    wm = InputWatermark(lateness_ms=H, idle_ms=IDLE)
    wm.assign(["p0", "p1"])
    wm.observe("p0", 30 * H)
    wm.observe("p1", 30 * H)
    wm.reached_end("p0", wall_ms=0, end_offset=END)
    wm.reached_end("p1", wall_ms=0, end_offset=END)
    wm.confirmed(wm.ask(IDLE), ["p0", "p1"])
    assert wm.value(IDLE) == 29 * H
    wm.observe("p0", 90 * H)  # the burst, first read on p0; p1's part is still to be fetched
    assert wm.value(IDLE + 1) == 29 * H  # p1's confirmation vouched for the old data only
    question = wm.ask(IDLE + 2)
    wm.has_unread("p1")  # the broker's answer: p1's end is past our position
    wm.confirmed(question, ["p1"])  # an answer for a partition read since is out of date
    assert wm.value(IDLE + 3) == 29 * H
    wm.observe("p1", 80 * H)
    wm.reached_end("p1", wall_ms=IDLE + 4, end_offset=END)
    wm.confirmed(wm.ask(2 * IDLE + 4), ["p1"])
    assert wm.value(2 * IDLE + 4) == 89 * H  # p1 idle and confirmed again: p0 sets it


def test_partitions_taken_back_start_the_watermark_over_under_a_new_generation() -> None:
    """An instance that gave partitions up and gets them back must not carry its clock, moved
    on by its other partitions meanwhile, over the events it re-reads from them (a takeover
    once fired 1,149 false deadlines that way)."""
    wm = InputWatermark(lateness_ms=H, idle_ms=IDLE)
    wm.assign(["p0", "p1"])
    assert wm.generation == 1
    wm.observe("p0", 20 * H)
    wm.observe("p1", 20 * H)
    assert wm.value(0) == 19 * H
    wm.revoke(["p0", "p1"])  # another worker joins: an eager rebalance
    wm.assign(["p1"])
    assert wm.generation == 1  # nothing new: the same source
    wm.observe("p1", 90 * H)
    assert wm.value(0) == 89 * H
    wm.revoke(["p1"])  # the other worker dies: everything comes back
    wm.assign(["p0", "p1"])
    assert wm.generation == 2  # p0 is new again: a new source, starting over
    assert wm.value(0) == 0  # p0 was read elsewhere from wherever: nothing known of it yet
    wm.observe("p0", 25 * H)
    assert wm.value(0) == 24 * H


def test_an_instance_starting_at_the_end_of_its_input_takes_the_clock_from_the_commits() -> None:
    """kill -9 after the last input was read and committed, but before the watermark record
    saying so reached every by_user partition: the next instance reads nothing. Seeded from
    the committed offsets' event times, it moves the clock where the dead one would have."""
    wm = InputWatermark(lateness_ms=H, idle_ms=IDLE)
    wm.assign(["p0", "p1"])
    wm.reached_end("p0", wall_ms=0, end_offset=END)
    wm.reached_end("p1", wall_ms=0, end_offset=END)
    wm.confirmed(wm.ask(IDLE), ["p0", "p1"])
    assert wm.value(IDLE) == 0  # no event time known: without the commits, stuck here
    wm.seed("p0", newest_of(commit_metadata(40 * H)))
    wm.seed("p1", newest_of(commit_metadata(70 * H)))
    wm.seed("p2", 90 * H)  # not ours: ignored
    assert wm.value(IDLE) == 0  # the confirmation vouched for the clock before the seeds
    wm.confirmed(wm.ask(IDLE + 1), ["p0", "p1"])
    assert wm.value(IDLE + 1) == 69 * H  # both idle: the newest of them, as before the kill


def test_seeds_only_raise_what_was_read_and_the_minimum_still_holds() -> None:
    wm = InputWatermark(lateness_ms=H, idle_ms=IDLE)
    wm.assign(["p0", "p1"])
    wm.observe("p0", 50 * H)
    wm.seed("p0", 30 * H)  # an older commit than what was read since: no effect
    assert wm.newest("p0") == 50 * H
    wm.seed("p1", 20 * H)  # p1 has unread records past its commit: it holds the minimum
    assert wm.value(0) == 19 * H


def test_commit_metadata_of_another_shape_seeds_nothing() -> None:
    assert commit_metadata(0) == ""
    for metadata in (None, "", "newest=", "newest=12a", "newest=-5", "newest=\u00b2", "other"):
        assert newest_of(metadata) == 0
    assert newest_of(commit_metadata(1_796_000_000_000)) == 1_796_000_000_000
