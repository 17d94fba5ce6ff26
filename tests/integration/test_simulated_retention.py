"""The simulator's population, fed through a worker on the event clock (Apache Kafka), comes out
with retention curves ordered by channel as configured: best retention first."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Producer

from streams.demo.check import rebuild_from_changelog
from streams.demo.page import pooled_by_channel, triangle_json
from streams.kafka import producer_config
from streams.settings import Settings
from streams.tools.retention import retention_triangle
from streams.tools.simulate import Channel, SimulationConfig, publish_simulation, simulate
from tests.integration.conftest import BrokerHandle
from tests.integration.workers import running_worker, wait_for, wait_metric, worker_env

pytestmark = pytest.mark.integration
CHANNELS = (  # best to worst: more active, fewer dropouts
    Channel("organic", 1.0, 2.0, 3.0, 1.0, 15.0),
    Channel("email", 1.0, 1.5, 4.0, 1.0, 6.0),
    Channel("paid_social", 1.0, 1.0, 5.0, 2.0, 3.0),
)


def test_retention_by_channel_follows_the_configuration(
    kafka_broker: BrokerHandle, unique_name
) -> None:
    config = SimulationConfig(
        users=3_000, days=40, seed=21, channels=CHANNELS, arrival_days=30, close_partitions=4
    )
    assert config.end_ms <= time.time() * 1000  # nothing in the future: ingest would reject it
    name = unique_name("simret")
    env = worker_env(
        kafka_broker,
        name,
        ENGAGEMENT_CLOCK="event",
        ENGAGEMENT_CHANNELS=",".join(c.name for c in CHANNELS),
    )
    settings = Settings.from_env(env)
    assert settings.partitions == config.close_partitions == 4
    with running_worker(env) as worker:
        stats = publish_simulation(
            simulate(config), Producer(producer_config(settings)), settings.input_topic
        )
        assert stats.failed == 0 and stats.days == config.days
        wait_metric([worker], "engagement_events_folded_total", stats.published, timeout=150)
        final_wm = (config.end_ms - 1 - int(settings.allowed_lateness * 1000)) / 1000
        wait_for(
            lambda: worker.metrics().get("engagement_watermark_timestamp_seconds", 0) >= final_wm,
            60,
            "the final watermark",
        )
        metrics = worker.metrics()
        assert sum(v for k, v in metrics.items() if k.startswith("engagement_events_invalid")) == 0
        tracked = metrics["engagement_users_tracked"]
        rebuilt = rebuild_from_changelog(settings)
        for _ in range(10):  # the changelog may trail the gauges by a moment
            if sum(rebuilt.gauges.stages.values()) == tracked:
                break
            time.sleep(1.0)
            rebuilt = rebuild_from_changelog(settings)
    assert rebuilt.today == config.first_day + config.days - 1
    triangle = retention_triangle(
        rebuilt.agg, rebuilt.today, config.days, rebuilt.channels, by_channel=True
    )
    pooled = pooled_by_channel(triangle_json(triangle, str))
    day7 = {ch: pooled[ch][7] for ch in (c.name for c in CHANNELS)}
    day1 = {ch: pooled[ch][1] for ch in day7}
    print(f"\nday-1 retention {day1}\nday-7 retention {day7}")
    order = [c.name for c in CHANNELS]
    assert sorted(order, key=lambda ch: -(day7[ch] or 0.0)) == order
    assert sorted(order, key=lambda ch: -(day1[ch] or 0.0)) == order
