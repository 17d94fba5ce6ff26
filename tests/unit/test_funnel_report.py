"""``engagement funnel``: per channel and cohort, what the gauges count, the weakest step marked."""

from __future__ import annotations

import csv
import io

from agents.logic.days import DAY_MS
from agents.logic.engine import Engine
from agents.logic.funnels import parse_funnels
from streams.settings import Settings
from streams.tools.funnel import funnel_command
from streams.worker.changelog import ChangelogSnapshot
from tests.unit.conftest import CHANNELS, T0, engine_config, make_event

HOUR = 3_600_000
FUNNELS = '[{"name": "onboarding", "steps": ["signup", "login", "value"], "window": "3d"}]'
# (channel, users, how far they get): organic loses users at "value", email at "login"
PATHS = [("organic", 10, 3), ("organic", 10, 2), ("email", 4, 3), ("email", 16, 1)]


def snapshot() -> ChangelogSnapshot:
    eng = Engine(engine_config(funnels=parse_funnels(FUNNELS)))
    eng.assign(0, {})
    events, n = [], 0
    for channel, users, steps in PATHS:
        for _ in range(users):
            n += 1
            for k, kind in enumerate(("signup", "login", "value")[:steps]):
                events.append(make_event(f"u{n}", T0 + k * HOUR, f"u{n}-{k}", kind, channel))
    eng.process(0, events, T0, T0 + DAY_MS)
    eng.mark_durable(eng.take_changes())
    snap = ChangelogSnapshot()
    for key, value in eng.partitions[0].store.items():
        snap.apply(0, key, value)
    return snap


def run(fmt: str, by_cohort: bool = False) -> str:
    settings = Settings.from_env(
        {"ENGAGEMENT_FUNNELS": FUNNELS, "ENGAGEMENT_CHANNELS": ",".join(CHANNELS)}
    )
    out = io.StringIO()
    code = funnel_command(
        settings, fmt=fmt, by_cohort=by_cohort, out=out, loader=lambda _: snapshot()
    )
    assert code == 0
    return out.getvalue()


def test_csv_has_each_step_per_channel_and_marks_the_weakest() -> None:
    rows = list(csv.DictReader(io.StringIO(run("csv"))))
    got = {(r["channel"], int(r["step"])): (r["reached"], r["converted"]) for r in rows}
    assert got[("organic", 1)] == ("20", "20")
    assert got[("organic", 2)] == ("20", "10")
    assert got[("email", 1)] == ("20", "4")
    assert got[("all", 1)] == ("40", "24")
    assert got[("all", 2)] == ("24", "14")
    assert got[("all", 3)] == ("14", "")
    assert [int(r["step"]) for r in rows if r["weakest"] == "1"] == [2]  # 14/24 < 24/40
    assert (
        float(next(r for r in rows if (r["channel"], r["step"]) == ("all", "3"))["overall"]) == 0.35
    )


def test_table_per_cohort_names_the_week_of_entry() -> None:
    text = run("table", by_cohort=True)
    assert "2025-12-29" in text  # T0 (2026-01-01) is a Thursday
    assert text.count("<- weakest") == 1
    assert "60.0% <- weakest" not in text and "58.3% <- weakest" in text


def test_no_funnel_declared_is_said() -> None:
    out = io.StringIO()
    assert funnel_command(Settings.from_env({}), out=out, loader=lambda _: snapshot()) == 2
