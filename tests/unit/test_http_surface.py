"""The worker's HTTP surface and secrets, without a broker: Faust's own views are off (even
when Faust's environment variables say otherwise), a forwarded /users/{id} goes to the owner's
advertised URL only, every topic is declared with the replication settings, and log records
never show a secret (including exception text)."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from yarl import URL

from agents.logic.partitioning import partition_for
from streams.redaction import mask_secrets
from streams.settings import Settings
from streams.topics import Topics, new_topics
from streams.worker.app import faust_app
from streams.worker.web import forward_url, owner_url, same_server


def test_faust_views_are_off_even_when_its_environment_says_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("APP_WEB_TABLES_ENABLED", "APP_WEB_ROUTER_ENABLED", "APP_WEB_STATS_ENABLED",
                 "APP_WEB_GRAPH_ENABLED", "APP_WEB_METRICS_ENABLED", "DEBUG"):  # fmt: skip
        monkeypatch.setenv(name, "true")
    monkeypatch.setenv("WEB_PORT", "1234")
    app = faust_app(Settings.from_env({"ENGAGEMENT_WEB_PORT": "7071"}))
    conf = app.conf
    flags = (conf.web_tables_enabled, conf.web_router_enabled, conf.web_stats_enabled)
    assert flags == (False, False, False)
    assert (conf.web_graph_enabled, conf.web_metrics_enabled, conf.debug) == (False,) * 3
    assert conf.web_port == 7071
    served = [blueprint for _, blueprint in app.web._enabled_blueprints()]
    assert served == ["faust.web.apps.production_index:blueprint"]  # '/': {"status": "OK"}


@pytest.mark.parametrize(
    ("owner", "user_id", "expected"),
    [
        ("http://w1.svc:6066", "u-1", "http://w1.svc:6066/users/u-1"),
        ("http://10.0.0.7:6066/ignored?x=1#f", "a b", "http://10.0.0.7:6066/users/a%20b"),
        ("https://user:pw@[::1]:7", "x/../y?z", "https://[::1]:7/users/x%2F..%2Fy%3Fz"),
    ],
)
def test_forwarding_keeps_the_owners_scheme_host_and_port_only(
    owner: str, user_id: str, expected: str
) -> None:
    assert str(forward_url(URL(owner), user_id)) == expected


def test_the_owner_comes_from_the_groups_assignment_and_murmur2() -> None:
    topic = "app-users-changelog"
    spread = {"http://w0:6066": {topic: [0, 1]}, "http://w1:6066": {topic: [2, 3]}}
    table: Any = SimpleNamespace(name="users", partitions=4, changelog_topic_name=topic)

    def app(me: str, assignment: dict[str, dict[str, list[int]]]) -> Any:
        router = SimpleNamespace(table_metadata=lambda name: assignment)
        return SimpleNamespace(router=router, conf=SimpleNamespace(canonical_url=URL(me)))

    users = {partition_for(f"u{i}".encode(), 4): f"u{i}" for i in range(50)}
    assert sorted(users) == [0, 1, 2, 3]
    for partition, user in users.items():
        owner = "http://w0:6066" if partition < 2 else "http://w1:6066"
        other = "http://w1:6066" if partition < 2 else "http://w0:6066"
        assert owner_url(app(owner, spread), table, user) is None  # mine: answered here
        assert owner_url(app(other, spread), table, user) == URL(owner)
    with pytest.raises(KeyError):  # nobody owns it yet
        owner_url(app("http://w0:6066", {}), table, users[0])


def test_same_server_compares_host_and_port() -> None:
    assert same_server(URL("http://a:1/x"), URL("http://a:1"))
    assert not same_server(URL("http://a:1"), URL("http://a:2"))
    assert not same_server(URL("http://a:1"), URL("http://b:1"))


def test_every_topic_is_declared_with_the_replication_settings() -> None:
    settings = Settings.from_env(
        {"ENGAGEMENT_PARTITIONS": "6", "ENGAGEMENT_MIN_INSYNC_REPLICAS": "2"}
    )
    topics = Topics.of(settings)
    declared = {t.topic: t for t in new_topics(settings)}
    assert set(declared) == {
        topics.input,
        *topics.owned,
        topics.changelog,
        topics.leader,
        topics.model,
    }
    for name, topic in declared.items():
        assert topic.replication_factor == -1, name  # the brokers' default
        assert (topic.config or {})["min.insync.replicas"] == "2", name
        assert topic.num_partitions == (1 if name in (topics.leader, topics.model) else 6), name
    assert (declared[topics.changelog].config or {})["cleanup.policy"] == "compact"
    assert (declared[topics.model].config or {})["cleanup.policy"] == "compact"
    assert "min.insync.replicas" not in (new_topics(Settings.from_env({}))[0].config or {})


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("test.redaction")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    factory = logging.getLogRecordFactory()
    try:
        yield stream
    finally:
        logging.setLogRecordFactory(factory)
        logger.removeHandler(handler)


def test_log_records_never_show_a_secret(captured: io.StringIO) -> None:
    mask_secrets(["s3cr3t-pw", ""])
    mask_secrets(["tok-1"])  # added to the same factory, not stacked
    log = logging.getLogger("test.redaction")
    log.info("login %s with %r", "alice", "s3cr3t-pw")
    log.warning("token tok-1 and s3cr3t-pw in the message itself")
    try:
        raise ValueError("refused: password=s3cr3t-pw")
    except ValueError:
        log.exception("failed for %s", "alice")
    log.info("nothing to hide: %d", 42)
    text = captured.getvalue()
    assert "s3cr3t-pw" not in text and "tok-1" not in text, text
    assert "login alice with '***'" in text
    assert "refused: password=***" in text  # the traceback too
    assert "nothing to hide: 42" in text
    factory = logging.getLogRecordFactory()
    assert getattr(factory, "secrets", None) == ("s3cr3t-pw", "tok-1")
