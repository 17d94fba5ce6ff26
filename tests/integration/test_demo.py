"""``engagement demo`` end to end on the embedded broker, with a small population: it exits 0,
writes the report folder, the report's numbers are the worker's final ``/metrics``, and the
page renders in headless Chromium without console errors and with charts that are not blank.
"""

from __future__ import annotations

import io
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import orjson
import pytest

from schemas.records import SIGNAL_KINDS
from streams.demo.chromium import find_chromium, screenshot
from streams.demo.run import run_demo
from streams.demo.view import SERIES
from streams.testbed.processes import parse_metrics
from tests.integration.conftest import in_ci

pytestmark = pytest.mark.integration
CHARTS = ("activity", "retention_by_cohort", "retention_by_channel", "stages", "signals")


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, Path, str, float]:
    folder = tmp_path_factory.mktemp("demo") / "report"
    out = io.StringIO()  # not a terminal: one line per simulated day
    began = time.monotonic()
    code = run_demo(seconds=12, users=800, days=24, seed=3, report=folder, out=out)
    took = time.monotonic() - began
    print(out.getvalue())
    print(f"demo wall time: {took:.1f}s")
    return code, folder, out.getvalue(), took


def test_demo_exits_0_and_writes_the_report(demo_report: tuple[int, Path, str, float]) -> None:
    code, folder, output, took = demo_report
    assert code == 0, output
    for name in ("index.html", "data.json", "metrics-final.prom"):
        assert (folder / name).stat().st_size > 0
    for chart in CHARTS:
        assert (folder / "charts" / f"{chart}.svg").stat().st_size > 0
    assert "report == /metrics: True" in output
    assert "changelog == /metrics: True" in output
    assert took < 150


def test_report_numbers_are_the_final_metrics(demo_report: tuple[int, Path, str, float]) -> None:
    _, folder, _, _ = demo_report
    data = orjson.loads((folder / "data.json").read_bytes())
    metrics = parse_metrics((folder / "metrics-final.prom").read_text())
    for key, name in SERIES.items():
        assert data["final"][key] == metrics[name], key
        assert data["series"][key][-1] == metrics[name], key  # the chart ends there too
    assert metrics["engagement_events_folded_total"] == data["published"] > 0
    assert data["agreement"] and all(row["ok"] for row in data["agreement"])
    page = (folder / "index.html").read_text()
    mau = metrics['engagement_active_users{window="30d"}']
    assert f"<td>{mau:,.0f}</td>" in page
    assert "<script" not in page and "http://" not in page.replace('xmlns="http://', "")
    assert len(data["retention"]["cohorts"]) >= 20
    assert {row["channel"] for row in data["retention"]["by_channel"]} >= {"organic", "paid_social"}


def test_report_shows_the_win_back_uplift(demo_report: tuple[int, Path, str, float]) -> None:
    """The campaign's uplift section: the counts are the final gauges, both arms present."""
    _, folder, output, _ = demo_report
    data = orjson.loads((folder / "data.json").read_bytes())
    metrics = parse_metrics((folder / "metrics-final.prom").read_text())
    rows = {(r["kind"], r["window"]): r for r in data["uplift"]}
    assert len(rows) == 3 * len(SIGNAL_KINDS) and data["config"]["winback_effect"] > 0

    def gauge(name: str, arm: str, window: str) -> float:
        labels = (f'arm="{arm}"', 'kind="dormant"', f'window="{window}"')
        return sum(
            v for k, v in metrics.items() if k.startswith(name) and all(x in k for x in labels)
        )

    for window in ("1d", "7d"):
        row = rows[("dormant", window)]
        assert row["treated"] == gauge(
            "engagement_signal_return_eligible_users", "treatment", window
        )
        assert row["held_out"] == gauge(
            "engagement_signal_return_eligible_users", "holdout", window
        )
        assert row["held_out_returned"] == gauge(
            "engagement_signal_returned_users", "holdout", window
        )
    assert rows[("dormant", "1d")]["treated"] > 0 and rows[("dormant", "1d")]["held_out"] > 0
    assert "<h2>Win-back uplift</h2>" in (folder / "index.html").read_text()
    assert "win-back uplift (engagement uplift, dormant signals)" in output


def _chromium() -> str:
    binary = find_chromium()
    if binary is None:
        message = "Chromium is not installed (apt-get install -y chromium; make system-deps)"
        if in_ci():
            pytest.fail(f"{message}; CI=true, so this fails")
        pytest.skip(message)
    return binary


def test_report_page_renders_in_headless_chromium(
    demo_report: tuple[int, Path, str, float], tmp_path: Path
) -> None:
    binary = _chromium()
    _, folder, _, _ = demo_report
    shot = screenshot(folder / "index.html", tmp_path / "page.png", 1400, 2000, binary=binary)
    assert shot.ok, shot.stderr[-3000:]
    assert shot.console == (), "\n".join(shot.console)
    pixels = decode_png(shot.png.read_bytes())
    assert pixels.shape[:2] == (2000, 1400)
    colours = distinct_colours(pixels)
    not_white = float((pixels[..., :3] < 245).any(axis=-1).mean())
    assert colours > 100 and not_white > 0.05, (colours, not_white)
    for chart in CHARTS:
        png = folder / "charts" / f"{chart}.png"
        assert png.exists(), f"the demo wrote no {png.name}"
        assert distinct_colours(decode_png(png.read_bytes())) > 8, chart


# -- a tiny PNG decoder (8-bit RGB/RGBA, non-interlaced: what Chromium writes) ---------------
def decode_png(data: bytes) -> np.ndarray:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat = 8, []
    width = height = channels = 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour, interlace)
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat.append(body)
    raw = np.frombuffer(zlib.decompress(b"".join(idat)), dtype=np.uint8)
    rows = raw.reshape(height, width * channels + 1)
    out = np.zeros((height, width * channels), dtype=np.uint8)
    prev = np.zeros(width * channels, dtype=np.uint8)
    for y in range(height):
        out[y] = _unfilter(int(rows[y, 0]), rows[y, 1:], prev, channels)
        prev = out[y]
    return out.reshape(height, width, channels)


def _unfilter(kind: int, line: np.ndarray, prev: np.ndarray, bpp: int) -> np.ndarray:
    if kind == 0:
        return line
    if kind == 2:
        summed: np.ndarray = line + prev  # uint8 wraps mod 256
        return summed
    if kind == 1:
        by_pixel = line.reshape(-1, bpp).astype(np.int64)
        return (np.cumsum(by_pixel, axis=0) % 256).astype(np.uint8).reshape(-1)
    cur = bytearray(line.tobytes())
    up = prev.tobytes()
    for i in range(len(cur)):
        a = cur[i - bpp] if i >= bpp else 0
        b = up[i]
        if kind == 3:
            cur[i] = (cur[i] + (a + b) // 2) & 0xFF
            continue
        c = up[i - bpp] if i >= bpp else 0
        p = a + b - c
        pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
        pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
        cur[i] = (cur[i] + pred) & 0xFF
    return np.frombuffer(bytes(cur), dtype=np.uint8)


def distinct_colours(pixels: np.ndarray) -> int:
    flat = pixels[..., :3].reshape(-1, 3).astype(np.uint32)
    return int(np.unique((flat[:, 0] << 16) | (flat[:, 1] << 8) | flat[:, 2]).size)
