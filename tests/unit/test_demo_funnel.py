"""The demo's funnel section: per channel from /metrics, and the weakest step against the
simulator's design."""

from __future__ import annotations

from typing import Any

from streams.demo.funnel import designed_weakest, funnel_data, funnel_section, live_funnel
from streams.demo.view import Progress, Recorder, SignalFeed, render_frame
from streams.settings import Settings
from streams.testbed.processes import parse_metrics
from streams.tools.onboarding import ONBOARDING_STEPS
from streams.tools.population import DEFAULT_CHANNELS

WATERMARK = "engagement_watermark_timestamp_seconds"
SHARES: list[dict[str, Any]] = [{"name": c.name, "share": c.share} for c in DEFAULT_CHANNELS]


def metrics(rows: dict[str, tuple[int, int, int]]) -> str:
    lines = []
    for channel, counts in rows.items():
        for k, users in enumerate(counts):
            labels = f'funnel="activation",step="{k + 1}",event="e",channel="{channel}"'
            lines.append(f'engagement_funnel_reached_users{{{labels},cohort="2026-03-02"}} {users}')
            lines.append(f'engagement_funnel_reached_users{{{labels},cohort="2026-03-09"}} {users}')
    return "\n".join(lines) + "\n"


def test_the_simulator_makes_step_two_the_weakest() -> None:
    assert designed_weakest({c["name"]: c["share"] for c in SHARES}) == 2


def test_per_channel_rows_and_the_weakest_step_measured() -> None:
    data = funnel_data(metrics({"organic": (100, 90, 70), "paid_social": (100, 70, 10)}), SHARES)
    assert data["all"]["reached"] == [400, 320, 160]
    assert [r["channel"] for r in data["by_channel"]] == ["organic", "paid_social"]
    assert data["by_channel"][1]["conversion"] == [0.7, 10 / 70]
    assert data["weakest_step"] == 2 and data["ok"]
    html = funnel_section({"funnel": data})
    assert "<h2>Activation funnel</h2>" in html and "paid_social" in html
    assert funnel_data(metrics({"organic": (100, 10, 9)}), SHARES)["ok"] is False


def test_no_funnel_data_is_said() -> None:
    data = funnel_data("", SHARES)
    assert data["weakest_step"] is None and not data["ok"]
    assert "No data" in funnel_section({"funnel": data}) and "No data" in funnel_section({})


def test_per_cohort_rows_and_table() -> None:
    text = metrics({"organic": (100, 90, 70), "paid_social": (100, 70, 10)})
    data = funnel_data(text, SHARES)
    cohorts = [(r["cohort"], r["channel"]) for r in data["by_cohort"]]
    assert cohorts == [
        ("2026-03-02", "organic"),
        ("2026-03-02", "paid_social"),
        ("2026-03-09", "organic"),
        ("2026-03-09", "paid_social"),
    ]
    assert data["by_cohort"][1]["reached"] == [100, 70, 10]
    assert data["by_cohort"][1]["conversion"] == [0.7, 10 / 70]
    html = funnel_section({"funnel": data})
    assert "By cohort and channel" in html and "2026-03-09" in html
    assert "<td>14.3%</td>" in html  # paid_social 70 -> 10 in a cohort row


def test_the_live_funnel_line_pools_channels_and_cohorts() -> None:
    parsed = parse_metrics(metrics({"organic": (100, 90, 70), "paid_social": (100, 70, 10)}))
    line = live_funnel(parsed)
    assert line.startswith(f"{ONBOARDING_STEPS[0]} 400 -> 80.0%")
    assert f"{ONBOARDING_STEPS[1]} 320 -> 50.0%" in line
    assert line.endswith(f"{ONBOARDING_STEPS[2]} 160")
    assert live_funnel({}) == ""
    rec = Recorder(lambda ms: ms // 86_400_000)
    rec.observe({**parsed, WATERMARK: 86_400.0})
    assert rec.funnel == line


def test_the_live_view_shows_the_funnel_line() -> None:
    rec = Recorder(lambda ms: ms // 86_400_000)
    progress = Progress(1, 60, 0, 0.0, "2026-03-02")
    feed = SignalFeed(Settings.from_env({}))  # not started: no broker needed
    assert "nobody has signed up yet" in render_frame(rec, feed, progress, (1, 7))
    rec.observe({**parse_metrics(metrics({"organic": (10, 4, 1)})), WATERMARK: 86_400.0})
    assert f"funnel   {ONBOARDING_STEPS[0]} 20 -> 40.0%" in render_frame(rec, feed, progress, (1,))
