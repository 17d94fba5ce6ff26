"""``--profile``: sample the engagement worker with py-spy and keep its top functions.

``py-spy record --subprocesses --format raw`` writes collapsed stacks (``frame;frame;...
count``, the frame being ``function (file:line)``, under one ``process PID:"command"`` frame per
process level); :func:`top_functions` folds them into own-time and total-time shares per
function (line numbers dropped), over all processes and per process (the worker, and its ingest
child when ingest runs apart), which is what the report quotes.
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


_MYPYC = re.compile(r"^CPy(?:Def|Py)_(\w+) \(__native")
_PYTHON_FILE = re.compile(r"\((?:.*\.py|<[^>]+>)(?::\d+)?\)$")


def frame_name(frame: str) -> str:
    """``fold (/x/agents/logic/fold.py:115)`` -> ``fold (agents/logic/fold.py)``; a function
    compiled by mypyc, as ``--native`` shows it (``CPyDef_engine___Engine____fold_user
    (__native_engagement_logic.c:29835)``) -> ``Engine._fold_user (agents/logic/engine.py,
    compiled)``."""
    frame = frame.strip()
    if compiled := _MYPYC.match(frame):
        module, *names = compiled.group(1).split("___")
        return f"{'.'.join(names)} (agents/logic/{module}.py, compiled)"
    return _TRIM.sub("(", _LINE.sub(")", frame))


def is_code_of_ours(frame: str) -> bool:
    """A Python function or one compiled by mypyc; not a C function of the interpreter or a
    library (those ``--native`` shows count as time of the function that called them)."""
    frame = frame.strip()
    return bool(_MYPYC.match(frame) or _PYTHON_FILE.search(frame))


PROCESS_NAMES = ("worker", "ingest child")  # by depth: the sampled process, then its child


def split_process(stack: str) -> tuple[str, list[str]]:
    """(the process a sample is from, named by depth, and its frames without process frames)."""
    frames = [f for f in stack.split(";") if f.strip()]
    depth = 0
    while depth < len(frames) and frames[depth].startswith("process "):
        depth += 1
    name = PROCESS_NAMES[min(depth, len(PROCESS_NAMES)) - 1] if depth else PROCESS_NAMES[0]
    return name, [frame_name(f) for f in frames[depth:] if is_code_of_ours(f)]


def parse_collapsed(
    text: str, process: str | None = None
) -> tuple[int, Counter[str], Counter[str]]:
    """(samples, own samples per function, samples per function anywhere on the stack), of
    one process only when ``process`` names it."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in text.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        name, frames = split_process(stack)
        if not frames or (process is not None and name != process):
            continue
        samples += count
        own[frames[-1]] += count
        for function in set(frames):
            total[function] += count
    return samples, own, total


# The parts of the pipeline a sample is charged to: the first whose marker is anywhere on its
# stack (so a deadline fired from within a batch's fold counts as deadlines) ...
PARTS = (
    ("Engine._fire_due (", "engine: deadlines due"),
    ("Engine._fold_user (", "engine: fold of a batch's users"),
    ("Engine.", "engine: other"),
    ("RdictPartition.", "RocksDB reads and writes"),
    ("Deliverer.", "delivery to Kafka (confluent-kafka)"),
    ("decode_record (", "by_user record decode"),
    ("IngestService.", "ingest (decode, validate, route, produce)"),
)
# ... else the first that the innermost frame's file matches (every agent runs under Faust's
# frames: only its own code counts as Faust)
LEAF_PARTS = (
    ("(prometheus_client/", "Prometheus metrics"),
    ("(faust/", "Faust"),
    ("(mode/", "Faust"),
    ("(aiokafka/", "aiokafka"),
    ("(asyncio/", "asyncio"),
    ("(selectors.py)", "asyncio"),
    ("(streams/", "worker runtime (streams/, agents/)"),
    ("(agents/", "worker runtime (streams/, agents/)"),
)


def part_of(frames: list[str]) -> str:
    """The part of the pipeline (:data:`PARTS`, :data:`LEAF_PARTS`) a stack is charged to."""
    joined = ";".join(frames)
    for marker, part in PARTS:
        if marker in joined:
            return part
    leaf = frames[-1] if frames else ""
    return next((part for marker, part in LEAF_PARTS if marker in leaf), "other")


def shares_by_part(text: str, process: str | None = None) -> dict[str, float]:
    """Each pipeline part's share of the samples in % (:func:`part_of`), largest first, of
    one process only when ``process`` names it."""
    counts: Counter[str] = Counter()
    for line in text.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        name, frames = split_process(stack)
        if frames and (process is None or name == process):
            counts[part_of(frames)] += int(count_text)
    samples = sum(counts.values())
    return {part: round(100.0 * n / samples, 1) for part, n in counts.most_common()}


def top_functions(text: str, limit: int = 15) -> dict[str, Any]:
    """The ``limit`` functions with the most own time, with own and total shares in %, and
    the samples by pipeline part (:func:`shares_by_part`), over all processes and
    (``processes``) per process with its share of the samples."""
    result = _top(text, limit, None)
    if result["samples"]:
        result["parts"] = shares_by_part(text)
        found = {split_process(line.rpartition(" ")[0])[0] for line in text.splitlines()}
        parts = {name: _top(text, limit, name) for name in PROCESS_NAMES if name in found}
        for name, part in parts.items():
            part["share_pct"] = round(100.0 * part["samples"] / result["samples"], 2)
            part["parts"] = shares_by_part(text, name)
        result["processes"] = parts
    return result


def _top(text: str, limit: int, process: str | None) -> dict[str, Any]:
    samples, own, total = parse_collapsed(text, process)
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


FINISH_GRACE_S = 60.0  # a recording may take this much longer than asked before it is killed


def py_spy() -> str | None:
    """The py-spy executable (next to this Python, else on PATH)."""
    local = Path(sys.executable).with_name("py-spy")
    return str(local) if local.exists() else shutil.which("py-spy")


def start_recording(
    pid: int,
    seconds: float,
    output: Path,
    rate: int = 100,
    *,
    native: bool = False,
    gil: bool = False,
) -> Any:
    """Start sampling ``pid`` (and its children) for ``seconds`` in the background; hand the
    returned process to :func:`finish_recording`. ``native``: with native frames, which is
    how functions compiled by mypyc show (py-spy then pauses the process for each sample);
    otherwise without pausing it, their time counts as their Python caller's. ``gil``: only
    the thread holding the GIL is sampled, which is where the process spends its CPU (a
    thread waiting in a C call, a producer's ``flush`` say, would count as busy with
    ``native``)."""
    exe = py_spy()
    if exe is None:
        raise RuntimeError("py-spy is not installed (pip install py-spy)")
    argv = [exe, "record", "--pid", str(pid), "--subprocesses"]
    argv += ["--duration", str(max(1, round(seconds)))]
    argv += ["--rate", str(rate), "--format", "raw", "--output", str(output)]
    argv.append("--native" if native else "--nonblocking")
    if gil:
        argv.append("--gil")
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish_recording(proc: Any, seconds: float, output: Path) -> str:
    """The collapsed stacks of a recording (raises RuntimeError on failure, a hung py-spy
    included: it is killed, and the phases measured before it are not lost with it)."""
    try:
        _, stderr = proc.communicate(timeout=seconds + FINISH_GRACE_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        waited = seconds + FINISH_GRACE_S
        raise RuntimeError(f"py-spy did not finish within {waited:.0f} s; killed") from None
    if proc.returncode != 0 or not output.exists():
        raise RuntimeError(f"py-spy failed ({proc.returncode}): {stderr.strip()[-500:]}")
    return output.read_text()


def record(pid: int, seconds: float, output: Path, rate: int = 100, **modes: bool) -> str:
    """Sample ``pid`` for ``seconds`` (``modes``: ``native``, ``gil``, as
    :func:`start_recording` takes them); the collapsed stacks (raises RuntimeError on
    failure)."""
    proc = start_recording(pid, seconds, output, rate, **modes)
    return finish_recording(proc, seconds, output)
