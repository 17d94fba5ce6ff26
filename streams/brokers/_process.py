"""Process plumbing shared by the broker classes: ports, readiness, shutdown, log tails."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from streams.errors import BrokerError

LOOPBACK = "127.0.0.1"


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port on ``host`` that nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    """True when ``port`` can be bound on ``host``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


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
