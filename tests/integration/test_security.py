"""Security on Apache Kafka: SASL_SSL (SCRAM-SHA-512 and PLAIN), refused logins that fail fast,
the API token on /users/{id}, and no user ids or payloads in logs or metric labels.

The SASL_SSL broker is this module's own: a throw-away CA and broker certificate from
``streams.testbed.brokers.tls``, SCRAM users created at format time, PLAIN users in the
listener's JAAS configuration, the controller on its own loopback listener.
"""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer

from streams.settings import Settings
from streams.testbed.brokers import KafkaBroker, default_kafka_lib, free_port
from streams.testbed.brokers.tls import SaslSsl, generate_tls
from streams.testbed.processes import WorkerProcess
from streams.tools.signals import SignalConsumer
from streams.worker.web import FORWARDED
from tests.integration.conftest import BrokerHandle, selected_kinds, start_or_skip
from tests.integration.workers import running_worker, wait_for, wait_metric, worker_env

pytestmark = pytest.mark.integration
DAY = 86_400_000
USERS = {"alice": "alice-Secr3t-pw"}  # SCRAM-SHA-512
PLAIN_USERS = {"bob": "bob-Secr3t-pw"}
TOKEN = "t0ken-for-tests"
REFUSED_WITHIN_S = 60.0


class SecureKafka:
    def __init__(self, broker: KafkaBroker, security: SaslSsl) -> None:
        self.broker = broker
        self.security = security
        self.handle = BrokerHandle("kafka", broker.bootstrap, broker.url)

    def env(
        self, name: str, user: str, password: str, mechanism: str, **extra: str
    ) -> dict[str, str]:
        return worker_env(
            self.handle,
            name,
            ENGAGEMENT_SECURITY_PROTOCOL="SASL_SSL",
            ENGAGEMENT_SASL_MECHANISM=mechanism,
            ENGAGEMENT_SASL_USERNAME=user,
            ENGAGEMENT_SASL_PASSWORD=password,
            ENGAGEMENT_SSL_CA_FILE=str(self.security.tls.ca_cert),
            **extra,
        )


@pytest.fixture(scope="module")
def secure_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureKafka]:
    if "kafka" not in selected_kinds():
        pytest.skip("Apache Kafka is not selected")
    lib = default_kafka_lib()
    tls = generate_tls(tmp_path_factory.mktemp("tls"))
    security = SaslSsl(tls, scram_users=USERS, plain_users=PLAIN_USERS)
    broker = KafkaBroker(lib, security=security)
    start_or_skip(broker, "SASL_SSL Kafka")
    try:
        yield SecureKafka(broker, security)
    finally:
        broker.stop()


def produce(config: dict[str, Any], topic: str, events: list[dict[str, Any]]) -> None:
    producer = Producer({**config, "partitioner": "murmur2_random", "linger.ms": 5})
    for event in events:
        producer.produce(topic, key=str(event["user_id"]).encode(), value=orjson.dumps(event))
    assert producer.flush(30) == 0


def lapsing_users(prefix: str, count: int) -> list[dict[str, Any]]:
    """Users last seen 20 days ago, then a clock event now: each one's dormant signal fires."""
    now = int(time.time() * 1000)
    events: list[dict[str, Any]] = [
        {"event_id": f"{prefix}-{i}", "user_id": f"{prefix}-{i}", "event_type": "page_view",
         "timestamp": now - 20 * DAY + i}
        for i in range(count)
    ]  # fmt: skip
    clock = {"event_id": "clock", "user_id": "clock", "event_type": "page_view"}
    return [*events, {**clock, "timestamp": now - 60_000}]


@pytest.mark.parametrize(("user", "mechanism"), [("alice", "SCRAM-SHA-512"), ("bob", "PLAIN")])
def test_worker_and_tools_work_over_sasl_ssl(
    secure_kafka: SecureKafka, unique_name, user: str, mechanism: str
) -> None:
    password = {**USERS, **PLAIN_USERS}[user]
    env = secure_kafka.env(unique_name("sec"), user, password, mechanism, ENGAGEMENT_CLOCK="event")
    settings = Settings.from_env(env)
    assert settings.masked()["ENGAGEMENT_SASL_PASSWORD"] == "***"
    events = lapsing_users("sec", 20)
    client = secure_kafka.security.client_config(user, password, mechanism)
    with running_worker(env) as worker:
        produce({"bootstrap.servers": secure_kafka.broker.bootstrap, **client},
                settings.input_topic, events)  # fmt: skip
        wait_metric([worker], "engagement_events_folded_total", len(events), timeout=60)
        wait_metric([worker], 'engagement_signals_emitted_total{kind="dormant"}', 20, timeout=30)
    assert password not in worker.log_path.read_text(errors="replace")
    with SignalConsumer(settings, ["dormant"]) as consumer:
        got = {signal.user_id for signal in consumer}
    assert got == {f"sec-{i}" for i in range(20)}
    publish = run_cli(["publish", "-", "--quiet"], env, stdin=orjson.dumps(events[0]) + b"\n")
    assert publish.returncode == 0, publish.stderr


def run_cli(
    argv: list[str], env: dict[str, str], stdin: bytes = b""
) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *argv],
        env={**os.environ, **env},
        input=stdin.decode(),
        capture_output=True,
        text=True,
        timeout=REFUSED_WITHIN_S + 30,
        check=False,
    )


def test_wrong_credentials_fail_fast_with_a_clear_error(
    secure_kafka: SecureKafka, unique_name, tmp_path: Path
) -> None:
    env = secure_kafka.env(unique_name("refused"), "alice", "wrong-password", "SCRAM-SHA-512")
    (tmp_path / "w").mkdir()
    worker = WorkerProcess(env, workdir=tmp_path / "w", name="refused")
    started = time.monotonic()
    worker.start(wait_ready=None)
    wait_for(lambda: not worker.running, REFUSED_WITHIN_S, "the refused worker to exit", 0.2)
    took = time.monotonic() - started
    code = worker.stop()
    log = worker.log_path.read_text(errors="replace")
    assert code not in (0, None), log[-2000:]
    assert "SASL authentication error" in log or "authentication failed" in log.lower()
    assert "wrong-password" not in log
    print(f"refused worker exited with {code} after {took:.1f}s")

    started = time.monotonic()
    publish = run_cli(["publish", "-", "--quiet"], env, stdin=b'{"user_id":"a","event_id":"1"}\n')
    assert publish.returncode != 0
    assert "authentication failed" in publish.stderr.lower()
    assert time.monotonic() - started < REFUSED_WITHIN_S

    started = time.monotonic()
    with pytest.raises(Exception) as info:  # KafkaException or BrokerError
        list(SignalConsumer(Settings.from_env(env)))
    assert time.monotonic() - started < REFUSED_WITHIN_S
    print(f"SignalConsumer refused after {time.monotonic() - started:.1f}s: {info.value}")


# -- the API token, and what must never be logged or labelled (plain Kafka) ---------------------


def http(url: str, token: str | None = None, headers: dict[str, str] | None = None) -> int:
    request = urllib.request.Request(url, headers=headers or {})
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_api_token_guards_users_and_is_forwarded(
    kafka_broker: BrokerHandle, unique_name, tmp_path: Path
) -> None:
    base = worker_env(kafka_broker, unique_name("token"), ENGAGEMENT_API_TOKEN=TOKEN)
    envs = [
        {**base, "ENGAGEMENT_WEB_PORT": str(free_port()),
         "ENGAGEMENT_DATA_DIR": str(tmp_path / f"w{i}")}
        for i in range(2)
    ]  # fmt: skip
    now = int(time.time() * 1000)
    events = [
        {"event_id": f"t{i}", "user_id": f"tok-{i}", "event_type": "page_view", "timestamp": now}
        for i in range(16)
    ]
    with running_worker(envs[0], "w0") as w0, running_worker(envs[1], "w1") as w1:
        wait_for(
            lambda: (
                [w.metrics().get("engagement_partitions_owned") for w in (w0, w1)] == [2.0, 2.0]
            ),
            60,
            "two partitions on each worker",
        )
        produce(
            {"bootstrap.servers": kafka_broker.bootstrap}, base["ENGAGEMENT_INPUT_TOPIC"], events
        )
        wait_metric([w0, w1], "engagement_events_folded_total", 16, timeout=60)
        for path in ("/metrics", "/healthz", "/readyz"):
            assert http(w0.base_url + path) == 200, path
        for event in events:  # half of them live on w1: w0 routes with the header
            url = f"{w0.base_url}/users/{event['user_id']}"
            assert http(url) == 401
            assert http(url, "not-the-token") == 401
            assert http(url, TOKEN) == 200, event["user_id"]
        assert http(f"{w1.base_url}/users/nobody", TOKEN) == 404
        with Trap() as trap:  # a host named by the request must never get the token
            forged = {"Host": trap.netloc, "X-Forwarded-Host": trap.netloc,
                      "X-Forwarded-Proto": "http", "Forwarded": f"host={trap.netloc}"}  # fmt: skip
            for event in events:
                url = f"{w0.base_url}/users/{event['user_id']}"
                assert http(url, TOKEN, forged) == 200, event["user_id"]
        assert trap.requests == [], trap.requests
        # a request marked as forwarded is answered where it lands, never relayed again
        hop = {FORWARDED: "1"}
        on_w1 = {e["user_id"]: http(f"{w1.base_url}/users/{e['user_id']}", TOKEN, hop)
                 for e in events}  # fmt: skip
        assert set(on_w1.values()) == {200, 503}, on_w1
        for user, status in on_w1.items():
            assert http(f"{w0.base_url}/users/{user}", TOKEN, hop) == (
                503 if status == 200 else 200
            )
        for path in FAUST_VIEWS:
            for worker in (w0, w1):
                assert http(worker.base_url + path) == 404, path
                assert http(worker.base_url + path, TOKEN) == 404, path
    routed = w0.log_path.read_text(errors="replace") + w1.log_path.read_text(errors="replace")
    assert TOKEN not in routed


FAUST_VIEWS = ("/table/", "/table/users/", "/router/", "/router/users/", "/graph/",
               "/stats/", "/assignment/", "/performance/")  # fmt: skip


class Trap:
    """An HTTP server that records every request it gets (it should get none)."""

    def __init__(self) -> None:
        import http.server
        import threading

        self.requests: list[tuple[str, str]] = []
        trap = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                trap.requests.append((self.path, str(self.headers.get("Authorization"))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.netloc = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Trap:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_no_secret_in_logs_or_http_answers(secure_kafka: SecureKafka, unique_name) -> None:
    """A worker with a SASL password and an API token, logging at debug level: neither value
    shows up in its whole log (worker, Faust, aiokafka, librdkafka, the ingest process) nor in
    any answer of its web server; the settings line it logs shows them as ***."""
    user, password = "alice", USERS["alice"]
    env = secure_kafka.env(unique_name("mask"), user, password, "SCRAM-SHA-512",
                           ENGAGEMENT_API_TOKEN=TOKEN, ENGAGEMENT_LOG_LEVEL="debug",
                           ENGAGEMENT_INGEST_PROCESS="true")  # fmt: skip
    settings = Settings.from_env(env)
    assert password not in repr(settings) and TOKEN not in str(settings)
    client = secure_kafka.security.client_config(user, password, "SCRAM-SHA-512")
    events = lapsing_users("mask", 10)
    answers: list[bytes] = []
    with running_worker(env) as worker:
        produce({"bootstrap.servers": secure_kafka.broker.bootstrap, **client},
                settings.input_topic, events)  # fmt: skip
        wait_metric([worker], "engagement_events_folded_total", len(events), timeout=60)
        for path in ("/healthz", "/readyz", "/metrics", "/", "/users/mask-1", *FAUST_VIEWS):
            answers.append(worker.get(path)[1])
        assert http(f"{worker.base_url}/users/mask-1", TOKEN) == 200
    log = worker.log_path.read_text(errors="replace")
    assert "ENGAGEMENT_SASL_PASSWORD=*** " in log and "ENGAGEMENT_API_TOKEN=***" in log
    assert "DEBUG" in log  # the log was written at debug level
    for secret in (password, TOKEN):
        leaked = [line for line in log.splitlines() if secret in line]
        assert not leaked, leaked[:3]
        assert not [a for a in answers if secret.encode() in a]


def test_no_user_ids_or_payloads_in_logs_or_metrics(
    kafka_broker: BrokerHandle, unique_name
) -> None:
    marker = "zq7x"  # in every user id and payload: must show up nowhere
    env = worker_env(kafka_broker, unique_name("pii"), ENGAGEMENT_LOG_LEVEL="info")
    now = int(time.time() * 1000)
    events: list[dict[str, Any]] = [
        {"event_id": f"{marker}-e{i}", "user_id": f"{marker}-user-{i}",
         "event_type": f"{marker}-type-{i % 3}", "timestamp": now - i * 1000,
         "channel": f"{marker}-ch", "properties": {"email": f"{marker}{i}@example.com"}}
        for i in range(200)
    ]  # fmt: skip
    bad: list[dict[str, Any]] = [
        {"event_id": f"{marker}-bad", "user_id": f"{marker}-bad", "timestamp": "x"},
        {"event_id": f"{marker}-fut", "user_id": f"{marker}-fut", "event_type": "page_view",
         "timestamp": now + 5 * DAY},
    ]  # fmt: skip
    with running_worker(env) as worker:
        produce({"bootstrap.servers": kafka_broker.bootstrap}, env["ENGAGEMENT_INPUT_TOPIC"],
                [*events, *bad])  # fmt: skip
        wait_metric([worker], "engagement_events_folded_total", 200, timeout=60)
        wait_metric([worker], "engagement_events_dead_lettered_total", 2, timeout=30)
        _, exposition = worker.get("/metrics")
        assert worker.user(f"{marker}-user-1") is not None  # a lookup is not logged either
    assert marker not in exposition.decode()
    log = worker.log_path.read_text(errors="replace")
    assert "INFO" in log  # the log was written at info level
    leaked = [line for line in log.splitlines() if marker in line]
    assert not leaked, leaked[:5]
