from __future__ import annotations

from agents.logic.watermarks import InputWatermark, SourceWatermarks

H = 3_600_000


def test_the_slowest_active_partition_holds_the_watermark() -> None:
    wm = InputWatermark(lateness_ms=H)
    wm.assign(["p0", "p1"])
    wm.observe("p0", 100 * H)
    assert wm.value == 0  # p1 has shown nothing yet: it may still hold old events
    wm.observe("p1", 10 * H)
    assert wm.value == 9 * H
    wm.observe("p0", 200 * H)
    assert wm.value == 9 * H


def test_an_idle_partition_does_not_hold_the_others_back() -> None:
    wm = InputWatermark(lateness_ms=H)
    wm.assign(["p0", "p1"])
    wm.observe("p0", 50 * H)
    wm.reached_end("p1")
    assert wm.value == 49 * H
    wm.reached_end("p0")
    assert wm.value == 49 * H
    wm.observe("p1", 20 * H)  # new data on p1 (older): the watermark never goes back
    assert wm.value == 49 * H


def test_sources_advance_together_and_silent_ones_expire() -> None:
    sw = SourceWatermarks(timeout_ms=30_000)
    assert sw.observe("a", 100, wall_ms=0) == 100
    assert sw.observe("b", 40, wall_ms=1_000) == 100  # never backwards
    assert sw.observe("a", 500, wall_ms=2_000) == 100  # b (at 40) holds it
    assert sw.observe("b", 300, wall_ms=3_000) == 300
    assert sw.observe("a", 900, wall_ms=40_000) == 900  # b silent > 30 s: no longer counts
