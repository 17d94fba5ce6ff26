"""``--profile``: sample the engagement worker with py-spy and keep its top functions.

``py-spy record --format raw`` writes collapsed stacks (``frame;frame;... count``, the frame
being ``function (file:line)``); :func:`top_functions` folds them into own-time and total-time
shares per function (line numbers dropped), which is what the report quotes.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

_LINE = re.compile(r":\d+\)$")
_ROOT = re.escape(str(Path(__file__).resolve().parents[3]) + "/")
_TRIM = re.compile(rf"\(.*(site-packages/|lib/python3\.\d+/|{_ROOT})")


def frame_name(frame: str) -> str:
    """``fold (/x/agents/logic/fold.py:115)`` -> ``fold (agents/logic/fold.py)``."""
    name = _LINE.sub(")", frame.strip())
    return _TRIM.sub("(", name)


def parse_collapsed(text: str) -> tuple[int, Counter[str], Counter[str]]:
    """(samples, own samples per function, samples per function anywhere on the stack)."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in text.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [frame_name(f) for f in stack.split(";") if f.strip()]
        if not frames:
            continue
        samples += count
        own[frames[-1]] += count
        for name in set(frames):
            total[name] += count
    return samples, own, total


def top_functions(text: str, limit: int = 15) -> dict[str, Any]:
    """The ``limit`` functions with the most own time, with own and total shares in %."""
    samples, own, total = parse_collapsed(text)
    if not samples:
        return {"samples": 0, "top_self": [], "top_total": []}

    def share(count: int) -> float:
        return round(100.0 * count / samples, 2)

    top_self = [
        {"function": name, "self_pct": share(count), "total_pct": share(total[name])}
        for name, count in own.most_common(limit)
    ]
    top_total = [
        {"function": name, "total_pct": share(count), "self_pct": share(own[name])}
        for name, count in total.most_common(limit)
    ]
    return {"samples": samples, "top_self": top_self, "top_total": top_total}


def py_spy() -> str | None:
    """The py-spy executable (next to this Python, else on PATH)."""
    local = Path(sys.executable).with_name("py-spy")
    return str(local) if local.exists() else shutil.which("py-spy")


def record(pid: int, seconds: float, output: Path, rate: int = 100) -> str:
    """Sample ``pid`` for ``seconds``; the collapsed stacks (raises RuntimeError on failure)."""
    exe = py_spy()
    if exe is None:
        raise RuntimeError("py-spy is not installed (pip install py-spy)")
    argv = [exe, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds)))]
    argv += ["--rate", str(rate), "--format", "raw", "--output", str(output), "--nonblocking"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=False)
    if done.returncode != 0 or not output.exists():
        raise RuntimeError(f"py-spy failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return output.read_text()
