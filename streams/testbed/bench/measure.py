"""What the benchmark reads from the operating system: CPU time, RSS, bytes on disk, machine.

CPU seconds are ``utime + stime`` of ``/proc/<pid>/stat``: the whole thread group (librdkafka's
threads, RocksDB's background threads included), summed over the process and its living
descendants (a worker's ingest process), the same way for every system measured. RSS likewise.
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

_TICKS = os.sysconf("SC_CLK_TCK")


def parse_stat_cpu(stat: str, ticks: int = _TICKS) -> float:
    """utime + stime in seconds from the text of ``/proc/<pid>/stat``."""
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / ticks  # fields 14 and 15 (1-based)


def parse_stat_ppid(stat: str) -> int:
    """The parent pid from the text of ``/proc/<pid>/stat``."""
    return int(stat.rsplit(")", 1)[1].split()[1])  # field 4 (1-based)


def process_tree(pid: int) -> list[int]:
    """``pid`` and its living descendants (a worker's ingest process, say)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = parse_stat_ppid((entry / "stat").read_text())
        except (OSError, ValueError, IndexError):  # gone meanwhile
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def _tree_sum(pid: int, read: Any, own: bool = True) -> Any:
    total = 0
    for member in process_tree(pid)[0 if own else 1 :]:
        try:
            total += read(member)
        except OSError:  # exited meanwhile
            continue
    return total


def cpu_seconds(pid: int, own: bool = True) -> float:
    """CPU seconds (user + system, all threads) the process (unless not ``own``) and its
    living descendants used so far."""
    return float(_tree_sum(pid, _own_cpu_seconds, own))


def cpu_split(pids: Sequence[int]) -> tuple[float, float]:
    """CPU seconds so far of the processes ``pids`` themselves and of their living descendants
    (the workers and their ingest processes), each summed."""
    return sum(map(_own_cpu_seconds, pids)), sum(cpu_seconds(pid, own=False) for pid in pids)


def _own_cpu_seconds(pid: int) -> float:
    return parse_stat_cpu(Path(f"/proc/{pid}/stat").read_text())


def cpu_by_process(worker: int, broker: int | None) -> dict[str, float]:
    """CPU seconds so far of the worker's own process, its descendants (its ingest process),
    this process (the bench's producer and consumers) and the Kafka broker (when known)."""
    out = {
        "worker": _own_cpu_seconds(worker),  # each process read once: the split adds up
        "ingest_process": cpu_seconds(worker, own=False),
        "bench": _own_cpu_seconds(os.getpid()),
    }
    if broker is not None:
        out["kafka_broker"] = _own_cpu_seconds(broker)
    return out


def percent_of_a_core(
    before: dict[str, float], after: dict[str, float], seconds: float
) -> dict[str, float]:
    """Each process's CPU between two :func:`cpu_by_process` readings ``seconds`` apart, in
    percent of one core, and their total (on N cores, N x 100 % is the machine)."""
    shares = {name: 100 * (after[name] - before[name]) / seconds for name in before}
    shares["total"] = sum(shares.values())
    return {name: round(value, 1) for name, value in shares.items()}


def rss_bytes(pid: int) -> int:
    """Resident set size (VmRSS) of the process and its living descendants."""
    return int(_tree_sum(pid, _own_rss_bytes))


def _own_rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def dir_bytes(path: Path) -> int:
    """Sum of the sizes of the files under ``path``."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += (Path(root) / name).stat().st_size
            except OSError:
                continue
    return total


def parse_cpuinfo(text: str) -> str | None:
    for line in text.splitlines():
        if line.lower().startswith("model name"):
            return line.split(":", 1)[1].strip()
    return None


def parse_meminfo_bytes(text: str) -> int | None:
    for line in text.splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return None


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def load_average() -> float | None:
    """The 1-minute load average (other work on the machine skews every figure)."""
    text = _read("/proc/loadavg")
    return float(text.split()[0]) if text else None


def filesystem_of(path: Path, mounts: str | None = None) -> str | None:
    """The type of the filesystem ``path`` is on (the longest mount point above it in
    ``/proc/mounts``), or None when not known."""
    text = _read("/proc/mounts") if mounts is None else mounts
    best: tuple[int, str] | None = None
    target = str(path.resolve())
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        point = fields[1]
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and (best is None or len(point) > best[0]):
            best = (len(point), fields[2])
    return None if best is None else best[1]


def machine_description(
    kafka_version: str | None = None, kafka_data: Path | None = None
) -> dict[str, Any]:
    """Cores, memory, CPU model, OS, Python and library versions, and the filesystem the
    broker's data is on."""
    from importlib.metadata import PackageNotFoundError, version

    def package(name: str) -> str | None:
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    memory = parse_meminfo_bytes(_read("/proc/meminfo"))
    return {
        "cpu": parse_cpuinfo(_read("/proc/cpuinfo")) or platform.processor() or None,
        "cores": os.cpu_count(),
        "memory_gib": None if memory is None else round(memory / 2**30, 1),
        "load_average_1m_at_end": load_average(),
        "os": f"{platform.system()} {platform.release()}",
        "python": sys.version.split()[0],
        "kafka": kafka_version,
        "kafka_data_on": None if kafka_data is None else filesystem_of(kafka_data),
        "faust-streaming": package("faust-streaming"),
        "confluent-kafka": package("confluent-kafka"),
        "rocksdict": package("rocksdict"),
    }
