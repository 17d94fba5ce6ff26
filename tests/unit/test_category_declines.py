"""category_declines against figures counted here from day lists: days per week in the last
four weeks against the weeks before, categories without a baseline left out, names paired
with the kept bitmaps in order (a category named but never kept, or kept but not named, is
not reported)."""

from __future__ import annotations

from agents.logic.signals import category_declines
from agents.logic.state import UserState

HORIZON = 120  # days a bitmap reaches back; the baseline is its 92 days before the last 28


def bitmap(days_ago: list[int]) -> int:
    return sum(1 << d for d in set(days_ago))


def expected(name: str, days_ago: list[int]) -> dict[str, object] | None:
    recent = len({d for d in days_ago if d < 28}) / 4
    baseline = len({d for d in days_ago if d >= 28}) / ((HORIZON - 28) / 7)
    if baseline == 0:
        return None
    return {
        "category": name,
        "baseline_days_per_week": round(baseline, 4),
        "recent_days_per_week": round(recent, 4),
        "decline": round(max(0.0, 1 - recent / baseline), 4),
    }


def test_declines_are_the_users_own_weeks_compared() -> None:
    kept = {
        "checkout": [*range(28, 120, 2), 3, 10],  # every other day before, twice lately
        "search": list(range(28, 60)) + list(range(0, 28)),  # more lately than before: no decline
        "help": [1, 2, 5],  # no baseline: left out
        "video": [29, 40, 77, 119],
    }
    state = UserState(
        first_ms=0, last_ms=0, last_day=200, categories=[bitmap(d) for d in kept.values()]
    )
    got = category_declines(state, list(kept), HORIZON)
    want = [e for name, days in kept.items() if (e := expected(name, days)) is not None]
    assert got == want
    assert [d["category"] for d in got] == ["checkout", "search", "video"]
    assert got[1]["decline"] == 0.0


def test_names_and_kept_bitmaps_pair_up_to_the_shorter() -> None:
    bitmaps = [bitmap(list(range(30, 90, 3))), bitmap(list(range(40, 100, 5)))]
    state = UserState(first_ms=0, last_ms=0, last_day=200, categories=bitmaps)
    assert [d["category"] for d in category_declines(state, ["a"], HORIZON)] == ["a"]
    names = ["a", "b", "c"]
    assert [d["category"] for d in category_declines(state, names, HORIZON)] == ["a", "b"]
