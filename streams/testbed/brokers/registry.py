"""A real Confluent-compatible Schema Registry on loopback: Apicurio Registry 2.0.2.Final with
in-memory (H2) storage, serving the Confluent API at ``/apis/ccompat/v6``.

Built from Maven Central by ``streams/testbed/registry/pom.xml`` (see its comment for why this
version) into a cache folder outside the repository (``make registry``, or
:func:`build_registry`); one ``java`` process per :class:`SchemaRegistry`, its log in
``registry.log`` in a temporary folder. Nothing is downloaded except by :func:`build_registry`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from schemas.errors import BrokerError
from streams.testbed.brokers._process import LOOPBACK, free_port, kill, spawn, tail, terminate

POM = Path(__file__).parents[1] / "registry" / "pom.xml"
REGISTRY_DIR_ENV = "ENGAGEMENT_REGISTRY_DIR"
CCOMPAT_PATH = "/apis/ccompat/v6"
JVM_OPTIONS = ("-Xms64m", "-Xmx384m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1")


def registry_version(pom: Path = POM) -> str:
    """The ``apicurio.version`` the pom pins (the Makefile reads it the same way)."""
    found = re.search(r"<apicurio\.version>([^<]+)</apicurio\.version>", pom.read_text("utf-8"))
    if found is None:
        raise BrokerError(f"no <apicurio.version> in {pom}")
    return found.group(1).strip()


def default_registry_dir() -> Path:
    """``$ENGAGEMENT_REGISTRY_DIR``, else ``~/.cache/engagement-stream/apicurio-registry-<v>``."""
    configured = os.environ.get(REGISTRY_DIR_ENV)
    if configured:
        return Path(configured)
    cache = Path.home() / ".cache" / "engagement-stream"
    return cache / f"apicurio-registry-{registry_version()}"


def runner_jar(registry_dir: Path) -> Path | None:
    """The built runner jar in ``registry_dir``, or None when it has not been built."""
    found = sorted(Path(registry_dir).glob("*-runner.jar"))
    return found[0] if found and (Path(registry_dir) / "lib").is_dir() else None


def build_registry(registry_dir: Path, pom: Path = POM, timeout: float = 900.0) -> Path:
    """Build the registry with ``mvn`` into ``registry_dir``; the runner jar's path."""
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerError("mvn is not installed; it is needed to build the Schema Registry")
    argv = [mvn, "-q", "-B", "-f", str(pom), "package", f"-Dregistry.dir={registry_dir}"]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise BrokerError(f"mvn timed out after {timeout:.0f}s: {' '.join(argv)}") from exc
    jar = runner_jar(registry_dir)
    if done.returncode != 0 or jar is None:
        output = "\n".join((done.stdout + done.stderr).splitlines()[-30:])
        raise BrokerError(f"mvn failed ({done.returncode}): {' '.join(argv)}\n{output}")
    return jar


class SchemaRegistry:
    """One Apicurio Registry process on a loopback port, for tests and demos."""

    label = "Schema Registry"
    stop_timeout = 15.0

    def __init__(self, registry_dir: Path, *, port: int | None = None) -> None:
        self.registry_dir = Path(registry_dir)
        self._port = port
        self._workdir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self.startup_seconds: float | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise BrokerError("the Schema Registry has no port before start()")
        return self._port

    @property
    def url(self) -> str:
        """The Confluent-compatible API's base URL (for ENGAGEMENT_SCHEMA_REGISTRY_URL)."""
        return f"http://{LOOPBACK}:{self.port}{CCOMPAT_PATH}"

    @property
    def log_path(self) -> Path:
        if self._workdir is None:
            raise BrokerError("the Schema Registry has no work folder before start()")
        return self._workdir / "registry.log"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 120.0) -> None:
        """Start the JVM and wait until ``GET /subjects`` answers (no-op when it runs)."""
        if self.running:
            return
        jar = runner_jar(self.registry_dir)
        if jar is None:
            raise BrokerError(f"no Schema Registry build in {self.registry_dir} (`make registry`)")
        if shutil.which("java") is None:
            raise BrokerError("java is not installed; the Schema Registry needs a JRE (17+)")
        started = time.monotonic()
        self._workdir = self._workdir or Path(tempfile.mkdtemp(prefix="engagement-registry-"))
        self._port = self._port or free_port()
        argv = ["java", *JVM_OPTIONS, f"-Dquarkus.http.port={self._port}"]
        argv += [f"-Dquarkus.http.host={LOOPBACK}", "-jar", str(jar)]
        self._process = process = spawn(argv, self.log_path, self._workdir)
        deadline = started + timeout
        while not self._answers():
            if process.poll() is not None or time.monotonic() > deadline:
                kill(process)
                self._process = None
                raise BrokerError(
                    f"the Schema Registry did not start on port {self._port}:\n"
                    f"{tail(self.log_path)}"
                )
            time.sleep(0.2)
        self.startup_seconds = time.monotonic() - started

    def stop(self) -> None:
        """Stop the process and remove its work folder."""
        if self._process is not None:
            terminate(self._process, self.stop_timeout)
            self._process = None
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/subjects", timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def __repr__(self) -> str:
        where = self.url if self._port is not None else "not started"
        return f"SchemaRegistry({where})"
