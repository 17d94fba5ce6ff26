"""Running ``engagement worker`` as a child process: for the demo, tests, faults and benchmarks.

A :class:`WorkerProcess` starts the real worker (same entry point as production) with its
settings in the environment, waits for ``/readyz``, reads ``/metrics`` and ``/users/{id}``, and
stops it with SIGTERM (clean) or SIGKILL (crash).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson

from schemas.errors import BrokerError


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text exposition -> {'name{labels}': value} (no comments, no _created)."""
    values: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        try:
            values[name] = float(value)
        except ValueError:
            continue
    return values


class WorkerProcess:
    """One ``engagement worker`` child process."""

    def __init__(
        self,
        env: Mapping[str, str],
        *,
        workdir: Path | None = None,
        name: str = "worker",
        command: Sequence[str] = (sys.executable, "-m", "streams.cli"),
    ) -> None:
        self.name = name
        self.command = list(command)  # ``engagement``, as installed somewhere
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix=f"engagement-{name}-"))
        self.env = {**os.environ, "ENGAGEMENT_DATA_DIR": str(self.workdir / "data"), **env}
        self.port = int(self.env.get("ENGAGEMENT_WEB_PORT", "6066"))
        host = self.env.get("ENGAGEMENT_WEB_HOST", "127.0.0.1")
        self.base_url = f"http://{'127.0.0.1' if host in {'0.0.0.0', '::'} else host}:{self.port}"
        self.log_path = self.workdir / f"{name}.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: Any = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, wait_ready: float | None = 90.0) -> WorkerProcess:
        self._log = self.log_path.open("ab")
        self._proc = subprocess.Popen(
            [*self.command, "worker"],
            env=self.env,
            cwd=self.workdir,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        if wait_ready:
            self.wait_ready(wait_ready)
        return self

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running:
                raise BrokerError(f"{self.name} exited early:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/readyz", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.25)
        raise BrokerError(f"{self.name} not ready after {timeout:.0f}s:\n{self.log_tail()}")

    def get(self, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"{self.base_url}{path}", timeout=timeout) as answer:
                return int(answer.status), bytes(answer.read())
        except urllib.error.HTTPError as exc:
            return int(exc.code), bytes(exc.read())

    def metrics(self, *names: str) -> dict[str, float]:
        """The worker's metrics; given ``names``, only the samples of those names."""
        query = "&".join(f"name[]={quote(name)}" for name in names)
        status, body = self.get(f"/metrics?{query}" if query else "/metrics")
        if status != 200:
            raise BrokerError(f"/metrics answered {status}")
        return parse_metrics(body.decode())

    def user(self, user_id: str) -> dict[str, Any] | None:
        status, body = self.get(f"/users/{user_id}")
        return orjson.loads(body) if status == 200 else None

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM and wait (a clean shutdown); SIGKILL if it does not end in time."""
        return self._end(signal.SIGTERM, timeout)

    def wait_exit(self, timeout: float) -> int | None:
        """Wait for the worker to end by itself (a fail-stop); its exit code."""
        proc = self._proc
        if proc is None:
            return None
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise BrokerError(
                f"{self.name} still running after {timeout:.0f}s:\n{self.log_tail()}"
            ) from None
        return self._end(signal.SIGKILL, 10.0)

    def kill(self) -> int | None:
        """SIGKILL: a crash, nothing flushed."""
        return self._end(signal.SIGKILL, 10.0)

    def _end(self, sig: int, timeout: float) -> int | None:
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None
        return proc.returncode

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> WorkerProcess:
        return self.start() if not self.running else self

    def __exit__(self, *exc: object) -> None:
        self.stop()
