"""Headless Chromium (Debian package ``chromium``): screenshots of pages and SVG files.

Used to turn the report's SVG charts into PNGs (the very pictures the page shows, with no
second chart library) and by the test that renders the report page. The console messages the
page logs are picked out of Chromium's stderr (``--enable-logging=stderr --v=0``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

CHROMIUM_ENV = "ENGAGEMENT_CHROMIUM"
CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "chrome", "headless_shell")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--enable-logging=stderr",
    "--v=0",
)
_CONSOLE_MARKERS = (":CONSOLE", "Uncaught", "Failed to load resource", "Refused to ")


def find_chromium() -> str | None:
    """``$ENGAGEMENT_CHROMIUM``, else the first Chromium-like binary on PATH."""
    configured = os.environ.get(CHROMIUM_ENV)
    if configured:
        return configured if shutil.which(configured) else None
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


@dataclass(frozen=True)
class Shot:
    """One screenshot: where it went, whether it was written, and what the page logged."""

    png: Path
    ok: bool
    console: tuple[str, ...]
    stderr: str


def console_messages(stderr: str) -> tuple[str, ...]:
    """The page's console output and load errors from Chromium's stderr log."""
    return tuple(line for line in stderr.splitlines() if any(m in line for m in _CONSOLE_MARKERS))


def screenshot(
    target: Path,
    png: Path,
    width: int,
    height: int,
    *,
    binary: str | None = None,
    timeout: float = 60.0,
) -> Shot:
    """Render ``target`` (an HTML or SVG file) at ``width`` x ``height`` into ``png``."""
    chromium = binary or find_chromium()
    if chromium is None:
        raise FileNotFoundError("no Chromium found (apt-get install chromium)")
    png.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="engagement-chromium-") as profile:
        command = [
            chromium,
            *FLAGS,
            f"--user-data-dir={profile}",
            f"--screenshot={png.resolve()}",
            f"--window-size={width},{height}",
            target.resolve().as_uri(),
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    ok = done.returncode == 0 and png.exists() and png.stat().st_size > 0
    return Shot(png, ok, console_messages(done.stderr), done.stderr)
