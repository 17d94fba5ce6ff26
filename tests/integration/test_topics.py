"""The worker creates every topic it needs before Faust starts, with the replication settings:
-1 means the brokers' default; a factor or min.insync.replicas the cluster cannot honour stops
start-up naming the variable (Apache Kafka, single node: default.replication.factor=1)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource  # type: ignore[attr-defined]

from schemas.errors import SettingsError
from streams.settings import Settings
from streams.topics import Topics, ensure_topics
from tests.integration.conftest import BrokerHandle
from tests.integration.workers import worker_env


def test_every_topic_created_with_the_brokers_default_replication(
    kafka_broker: BrokerHandle, unique_name
) -> None:
    settings = Settings.from_env(worker_env(kafka_broker, unique_name("rf")))
    topics = Topics.of(settings)
    wanted = {topics.input, *topics.owned, topics.changelog, topics.leader, topics.model}
    assert set(ensure_topics(settings)) == wanted
    assert ensure_topics(settings) == []  # existing topics are left as they are
    admin = AdminClient({"bootstrap.servers": kafka_broker.bootstrap})
    metadata = admin.list_topics(timeout=10).topics
    for name in wanted:
        parts = metadata[name].partitions.values()
        assert len(parts) == (1 if name in (topics.leader, topics.model) else 4), name
        assert {len(p.replicas) for p in parts} == {1}, name  # default.replication.factor
    resource = ConfigResource("topic", topics.changelog)
    config = admin.describe_configs([resource])[resource].result(30)
    assert config["cleanup.policy"].value == "compact"


@pytest.mark.parametrize(
    ("variable", "value"),
    [("ENGAGEMENT_MIN_INSYNC_REPLICAS", "2"), ("ENGAGEMENT_REPLICATION_FACTOR", "3")],
)
def test_replication_the_cluster_cannot_honour_stops_start_up(
    kafka_broker: BrokerHandle, unique_name, variable: str, value: str, tmp_path: Path
) -> None:
    env = worker_env(kafka_broker, unique_name("rf-bad"), **{variable: value})
    with pytest.raises(SettingsError) as info:
        ensure_topics(Settings.from_env(env))
    assert info.value.variable == variable
    env = worker_env(kafka_broker, unique_name("rf-bad"), **{variable: value})
    worker = subprocess.run(
        [sys.executable, "-m", "streams.cli", "worker"],
        env={**os.environ, **env, "ENGAGEMENT_DATA_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert worker.returncode != 0
    assert variable in worker.stderr, worker.stderr[-2000:]
