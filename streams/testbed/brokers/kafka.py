"""Apache Kafka 4.1.1 KRaft nodes (combined broker + controller): one alone, or one node of a
:class:`~streams.testbed.brokers.cluster.KafkaCluster` (a static quorum of its voters).

The jars come from Maven Central (``streams/brokers/pom.xml``); nothing is downloaded here
except by :func:`fetch_kafka_jars`. One ``java`` process per broker, listening on loopback
only, with its data in a temporary folder (or ``log_dir``) and its log in ``server.log`` next
to ``server.properties``.
"""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import time
import uuid
from pathlib import Path

from schemas.errors import BrokerError
from streams.testbed.brokers._process import LOOPBACK, ManagedBroker, free_port, kill, spawn, tail
from streams.testbed.brokers.tls import SaslSsl

POM = Path(__file__).with_name("pom.xml")
JVM_OPTIONS = ("-Xms128m", "-Xmx512m", "-XX:+UseG1GC", "-Djava.awt.headless=true")
SLF4J_BINDING = "org.apache.logging.log4j:log4j-slf4j-impl"

TEST_PROPERTIES: dict[str, str] = {
    "offsets.topic.replication.factor": "1",
    "offsets.topic.num.partitions": "8",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "transaction.state.log.num.partitions": "4",
    "share.coordinator.state.topic.replication.factor": "1",
    "share.coordinator.state.topic.min.isr": "1",
    "group.initial.rebalance.delay.ms": "0",
    "broker.heartbeat.interval.ms": "500",
    "broker.session.timeout.ms": "3000",
    "num.partitions": "1",
    "default.replication.factor": "1",
    "auto.create.topics.enable": "true",
    "num.network.threads": "2",
    "num.io.threads": "4",
    "log.cleaner.dedupe.buffer.size": str(16 * 1024 * 1024),
}

LOG4J2 = """\
status = error
name = engagement-test-broker
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.request.name = kafka.request.logger
logger.request.level = WARN
"""


def kafka_version(pom: Path = POM) -> str:
    """The ``kafka.version`` the pom pins (the Makefile reads it the same way)."""
    found = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", pom.read_text(encoding="utf-8"))
    if found is None:
        raise BrokerError(f"no <kafka.version> in {pom}")
    return found.group(1).strip()


def kafka_jars_present(lib_dir: Path) -> bool:
    """True when ``lib_dir`` holds the Kafka server jar."""
    return any(lib_dir.glob("kafka_2.13-*.jar"))


def fetch_kafka_jars(lib_dir: Path, pom: Path = POM, timeout: float = 600.0) -> None:
    """Resolve Kafka's jars from Maven Central into ``lib_dir`` with ``mvn``.

    Also copies log4j's SLF4J binding when the pom does not bring it, so the broker's own
    log (Kafka logs through SLF4J) reaches ``server.log`` instead of a no-op logger.
    """
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerError("mvn is not installed; it is needed to fetch Apache Kafka's jars")
    try:
        lib_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BrokerError(f"cannot create {lib_dir} for Kafka's jars: {exc}") from exc
    base = [mvn, "-q", "-B", "-f", str(pom)]
    _run([*base, "dependency:copy-dependencies", f"-DoutputDirectory={lib_dir}"], timeout, "mvn")
    log4j = sorted(lib_dir.glob("log4j-core-*.jar"))
    if log4j and not _has_slf4j_binding(lib_dir):
        version = log4j[-1].name.removeprefix("log4j-core-").removesuffix(".jar")
        artifact = f"-Dartifact={SLF4J_BINDING}:{version}"
        _run([*base, "dependency:copy", artifact, f"-DoutputDirectory={lib_dir}"], timeout, "mvn")
    (lib_dir / ".complete").touch()


def _run(argv: list[str], timeout: float, what: str) -> None:
    """Run a helper command; BrokerError with the tail of its output when it fails."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise BrokerError(f"{what} timed out after {timeout:.0f}s: {' '.join(argv)}") from exc
    if done.returncode != 0:
        output = "\n".join((done.stdout + done.stderr).splitlines()[-30:])
        raise BrokerError(f"{what} failed ({done.returncode}): {' '.join(argv)}\n{output}")


def _has_slf4j_binding(lib_dir: Path) -> bool:
    return any(lib_dir.glob("log4j-slf4j*-impl-*.jar"))


def _error_lines(log: Path, limit: int = 5) -> str:
    """The first ERROR / FATAL lines of a broker log (stack traces left out)."""
    try:
        with log.open(encoding="utf-8", errors="replace") as lines:
            found = [line.rstrip() for line in lines if "] ERROR " in line or "] FATAL " in line]
    except OSError:
        return ""
    return "\n".join(found[:limit])


def _cluster_id() -> str:
    """A Kafka ``Uuid`` string: 16 random bytes, URL-safe base64 without padding."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


class KafkaBroker(ManagedBroker):
    """One Apache Kafka KRaft node on loopback, for tests, demos and benchmarks."""

    kind = "kafka"
    label = "Kafka"
    stop_timeout = 30.0
    workdir_prefix = "engagement-kafka-"

    def __init__(
        self,
        lib_dir: Path,
        *,
        port: int | None = None,
        log_dir: Path | None = None,
        extra_properties: dict[str, str] | None = None,
        security: SaslSsl | None = None,
        node_id: int = 1,
        controller_port: int | None = None,
        quorum_voters: str | None = None,
        cluster_id: str | None = None,
        jvm_options: tuple[str, ...] = JVM_OPTIONS,
    ) -> None:
        super().__init__(port)
        self.lib_dir = Path(lib_dir)
        self.node_id = node_id
        self._controller_port = controller_port
        self._voters = quorum_voters  # None: a quorum of this node alone (--standalone)
        self._cluster_id = cluster_id or _cluster_id()
        self._jvm_options = jvm_options
        self._log_dir = log_dir
        self._extra = dict(extra_properties or {})
        self.security = security  # None: PLAINTEXT; else one SASL_SSL listener (tls.py)

    @property
    def log_dir(self) -> Path:
        return self._log_dir if self._log_dir is not None else self.workdir / "data"

    @property
    def server_log(self) -> Path:
        return self.workdir / "server.log"

    def start(self, timeout: float = 90.0) -> None:
        """Format the log dir when it is new, start the JVM and wait for metadata."""
        if self.running:
            return
        if not kafka_jars_present(self.lib_dir):
            raise BrokerError(f"no Apache Kafka jars in {self.lib_dir} (run `make kafka-jars`)")
        if shutil.which("java") is None:
            raise BrokerError("java is not installed; Apache Kafka needs a JRE (17 or newer)")
        started = self._prepare()
        deadline = started + timeout
        self._controller_port = self._controller_port or free_port()
        properties = self._write_config()
        if not (self.log_dir / "meta.properties").exists():
            self._format(properties, deadline)
        argv = ["java", *self._jvm_options, *self._log_options(), "-cp", self._classpath()]
        argv += ["kafka.Kafka", str(properties)]
        if self.security is None:
            self._launch(argv, self._stdout, started, deadline)
        else:
            self._launch_secure(argv, started, deadline)

    def _launch_secure(self, argv: list[str], started: float, deadline: float) -> None:
        """Like ``_launch``, but readiness is asked over SASL_SSL as the broker's own user."""
        from confluent_kafka.admin import AdminClient

        assert self.security is not None
        self._process = process = spawn(argv, self._stdout, self.workdir)
        config = self.security.client_config("broker", self.security.broker_password)
        admin = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0, **config})
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise self._failure(f"exited with code {process.returncode}")
            try:
                if admin.list_topics(timeout=2.0).brokers:
                    self.startup_seconds = time.monotonic() - started
                    return
            except Exception:  # not up yet (or refusing): ask again until the deadline
                pass
            time.sleep(0.2)
        kill(process)
        raise self._failure("did not answer metadata over SASL_SSL in time")

    def _describe(self) -> str:
        return f"lib_dir={str(self.lib_dir)!r}"

    @property
    def _stdout(self) -> Path:
        return self.workdir / "stdout.log"

    def _classpath(self) -> str:
        return str(self.lib_dir / "*")

    def _log_options(self) -> list[str]:
        config = self.workdir / "log4j2.properties"
        config.write_text(LOG4J2.format(log=self.server_log), encoding="utf-8")
        return [f"-Dlog4j2.configurationFile={config}", f"-Dkafka.logs.dir={self.workdir}"]

    def _write_config(self) -> Path:
        controller = f"{LOOPBACK}:{self._controller_port}"
        quorum = (
            {"controller.quorum.voters": self._voters}
            if self._voters
            else {"controller.quorum.bootstrap.servers": controller}
        )
        properties = {
            "process.roles": "broker,controller",
            "node.id": str(self.node_id),
            **quorum,
            "listeners": f"PLAINTEXT://{self.bootstrap},CONTROLLER://{controller}",
            "advertised.listeners": f"PLAINTEXT://{self.bootstrap},CONTROLLER://{controller}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.log_dir),
            **TEST_PROPERTIES,
            **self._extra,
        }
        if self.security is not None:
            properties.update(self.security.listener_properties(self.bootstrap, controller))
        path = self.workdir / "server.properties"
        path.write_text("".join(f"{k}={v}\n" for k, v in properties.items()), encoding="utf-8")
        return path

    def _format(self, properties: Path, deadline: float) -> None:
        argv = ["java", "-Xmx256m", *self._log_options(), "-cp", self._classpath()]
        argv += ["kafka.tools.StorageTool", "format", "--ignore-formatted"]
        argv += [] if self._voters else ["--standalone"]
        argv += ["--cluster-id", self._cluster_id, "--config", str(properties)]
        argv += self.security.format_arguments() if self.security is not None else []
        _run(argv, max(1.0, deadline - time.monotonic()), "kafka-storage format")

    def _failure(self, what: str) -> BrokerError:
        parts = [f"Apache Kafka at {self.bootstrap} {what}."]
        if not _has_slf4j_binding(self.lib_dir):
            parts.append(f"(no SLF4J binding in {self.lib_dir}: the broker's own log is empty)")
        errors = _error_lines(self.server_log)
        if errors:
            parts.append(f"--- first errors in {self.server_log} ---\n{errors}")
        for path in (self.server_log, self._stdout):
            text = tail(path, lines=30)
            if text:
                parts.append(f"--- tail of {path} ---\n{text}")
        return BrokerError("\n".join(parts))
