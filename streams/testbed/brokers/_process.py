"""Process plumbing shared by the broker classes: ports, readiness, shutdown, log tails.

:class:`ManagedBroker` is the lifecycle both :class:`KafkaBroker` and :class:`TansuBroker` share.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Self

from schemas.errors import BrokerError

LOOPBACK = "127.0.0.1"


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port on ``host`` that nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a text file ('' when it does not exist)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def answers_metadata(bootstrap: str, timeout: float) -> bool:
    """True when a broker at ``bootstrap`` returns cluster metadata with at least one broker."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(
        {
            "bootstrap.servers": bootstrap,
            "socket.connection.setup.timeout.ms": max(1000, int(timeout * 1000)),
            "log_level": 0,
        }
    )
    try:
        metadata = admin.list_topics(timeout=timeout)
    except Exception:
        return False
    return bool(metadata.brokers)


def wait_until_ready(
    bootstrap: str,
    process: subprocess.Popen[bytes],
    deadline: float,
    describe_failure: Callable[[str], BrokerError],
) -> None:
    """Poll ``bootstrap`` for metadata until ``deadline`` (a ``time.monotonic()`` value).

    Raises the error built by ``describe_failure`` when the process exits or time runs out.
    """
    while True:
        code = process.poll()
        if code is not None:
            raise describe_failure(f"exited with code {code} before it answered metadata")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise describe_failure(f"did not answer metadata on {bootstrap} in time")
        if answers_metadata(bootstrap, timeout=min(2.0, max(0.2, remaining))):
            return
        time.sleep(0.1)


def terminate(process: subprocess.Popen[bytes], timeout: float) -> int:
    """SIGTERM the process (and its group), wait ``timeout`` seconds, then SIGKILL."""
    if process.poll() is None:
        _signal_group(process, signal.SIGTERM)
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
    return kill(process)


def kill(process: subprocess.Popen[bytes]) -> int:
    """SIGKILL the process (and its group) and reap it."""
    if process.poll() is None:
        _signal_group(process, signal.SIGKILL)
    return process.wait()


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    # Brokers are started in their own session, so the group id is the process id.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)
        return
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(sig)


def spawn(
    argv: list[str], log_path: Path, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in its own session with stdout and stderr appended to ``log_path``."""
    with log_path.open("ab") as log:
        return subprocess.Popen(
            argv,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )


class ManagedBroker(ABC):
    """Lifecycle shared by the broker classes: one process on a loopback port, a temp folder.

    Subclasses set :attr:`kind`, :attr:`label`, :attr:`stop_timeout` and
    :attr:`workdir_prefix`, and implement :meth:`start` (with its own default timeout, through
    :meth:`_prepare` and :meth:`_launch`), :meth:`_failure` and :meth:`_describe`.
    """

    kind: str
    label: ClassVar[str]
    stop_timeout: ClassVar[float]
    workdir_prefix: ClassVar[str]

    def __init__(self, port: int | None = None) -> None:
        self._port = port
        self._workdir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self.startup_seconds: float | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise BrokerError(f"the {self.label} broker has no port before start()")
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
            raise BrokerError(f"the {self.label} broker has no work folder before start()")
        return self._workdir

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        """The broker's process id while it runs (the bench reads its CPU time)."""
        return self._process.pid if self.running and self._process is not None else None

    @abstractmethod
    def start(self, timeout: float = ...) -> None:
        """Start the broker and wait until it answers metadata (no-op when it runs)."""

    def stop(self, timeout: float | None = None) -> None:
        """Stop the broker (SIGTERM, SIGKILL after ``timeout``) and remove its temp folder.

        ``timeout`` defaults to the class's :attr:`stop_timeout`.
        """
        if self._process is not None:
            terminate(self._process, self.stop_timeout if timeout is None else timeout)
            self._process = None
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def kill(self) -> None:
        """SIGKILL the broker, keeping its work folder for :meth:`restart` (fault tests).

        With Tansu's memory storage every record is gone.
        """
        if self._process is not None:
            kill(self._process)

    def restart(self, timeout: float | None = None) -> None:
        """Stop the process (if it runs) and start it again on the same port(s) and folder.

        ``timeout`` (for the start) defaults to the one of :meth:`start`.
        """
        if self._process is not None:
            terminate(self._process, self.stop_timeout)
            self._process = None
        if timeout is None:
            self.start()
        else:
            self.start(timeout=timeout)

    def __enter__(self) -> Self:
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
        return f"{type(self).__name__}({where}, {self._describe()})"

    def _prepare(self) -> float:
        """Create the work folder and pick the port when missing; the ``monotonic()`` start."""
        started = time.monotonic()
        if self._workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix=self.workdir_prefix))
        self._port = self._port or free_port()
        return started

    def _launch(
        self,
        argv: list[str],
        log_path: Path,
        started: float,
        deadline: float,
        env: dict[str, str] | None = None,
    ) -> None:
        """Spawn ``argv`` and wait for metadata; kills the process when it does not answer."""
        self._process = spawn(argv, log_path, self.workdir, env)
        try:
            wait_until_ready(self.bootstrap, self._process, deadline, self._failure)
        except BrokerError:
            kill(self._process)
            raise
        self.startup_seconds = time.monotonic() - started

    @abstractmethod
    def _failure(self, what: str) -> BrokerError:
        """The error for a broker that exited or did not answer (``what`` says which)."""

    @abstractmethod
    def _describe(self) -> str:
        """What :meth:`__repr__` shows after the address."""
