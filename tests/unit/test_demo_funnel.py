"""The demo's funnel section: per channel from /metrics, and the weakest step against the
simulator's design."""

from __future__ import annotations

from typing import Any

from streams.demo.funnel import designed_weakest, funnel_data, funnel_section
from streams.tools.population import DEFAULT_CHANNELS

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
