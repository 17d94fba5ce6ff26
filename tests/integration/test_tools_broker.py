"""The tools' Kafka readers against a real broker: the state changelog reader and the signal
consumer (unique topic names per test, created here)."""

from __future__ import annotations

import pytest
from confluent_kafka import Producer

from agents.logic.engine import Engine
from agents.logic.meta import META_KEY
from agents.logic.state import encode
from schemas.errors import BrokerError
from streams.settings import Settings
from streams.tools.signals import SignalConsumer
from streams.topics import Topics
from streams.worker.changelog import load_changelog, read_states
from tests.integration.conftest import BrokerHandle, create_topics
from tests.unit.conftest import T0, engine_config, make_event
from tests.unit.test_signal_schema import scripted_signals

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def settings_for(broker: BrokerHandle, prefix: str) -> Settings:
    return Settings().replace(
        broker=(f"kafka://{broker.bootstrap}",), topic_prefix=prefix, app_id=prefix
    )


def produce(bootstrap: str, records: list[tuple[str, int | None, bytes, bytes | None]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for topic, partition, key, value in records:
        if partition is None:
            producer.produce(topic, key=key, value=value)
        else:
            producer.produce(topic, key=key, value=value, partition=partition)
    assert producer.flush(30) == 0


def test_state_reader_sees_every_partition(broker: BrokerHandle, unique_name) -> None:
    prefix = unique_name("tools")
    settings = settings_for(broker, prefix)
    topic = f"{prefix}-users-changelog"
    create_topics(broker.bootstrap, {topic: 3})
    eng = Engine(engine_config())
    eng.assign(0, {})
    eng.process(0, [make_event(f"u{i}", T0 + i * 60_000) for i in range(6)], 0, T0)
    eng.mark_durable(eng.take_changes())  # as the runtime does once Kafka has them
    states = {k.decode(): v for k, v in eng.partitions[0].store.items() if k != META_KEY}
    records: list[tuple[str, int | None, bytes, bytes | None]] = []
    records.append((topic, 1, b"stale", states["u0"]))
    for i, (user, raw) in enumerate(sorted(states.items())):
        records.append((topic, i % 3, user.encode(), b"\x01old"))  # superseded below
        records.append((topic, i % 3, user.encode(), raw))
    records.append((topic, 1, b"stale", None))  # tombstones delete
    records.append((topic, 2, b"u5", None))
    records.append((topic, 0, META_KEY, b'{"watermark_ms": 123}'))
    records.append((topic, 2, META_KEY, b'{"watermark_ms": 456}'))
    produce(broker.bootstrap, records)

    snapshot = load_changelog(settings, timeout=30)
    got = dict(snapshot.users())
    expected = {user: state for user, state in states.items() if user != "u5"}
    assert snapshot.records == 1 + 2 * 6 + 4
    assert sorted(got) == ["u0", "u1", "u2", "u3", "u4"]
    assert all(encode(got[user]) == expected[user] for user in got)
    assert snapshot.newest_watermark_ms() == 456
    assert dict(read_states(settings)) == got


def test_state_reader_on_an_empty_changelog(broker: BrokerHandle, unique_name) -> None:
    prefix = unique_name("tools")
    create_topics(broker.bootstrap, {f"{prefix}-users-changelog": 2})
    assert list(read_states(settings_for(broker, prefix), timeout=20)) == []


def test_state_reader_needs_the_topic(broker: BrokerHandle, unique_name) -> None:
    with pytest.raises(BrokerError, match="not found"):
        load_changelog(settings_for(broker, unique_name("missing")), timeout=5)


def test_signal_consumer_reads_two_signals(broker: BrokerHandle, unique_name) -> None:
    import orjson

    prefix = unique_name("sig")
    settings = settings_for(broker, prefix)
    dormant, churned = (
        Topics.of(settings).signals["dormant"],
        Topics.of(settings).signals["churned"],
    )
    create_topics(broker.bootstrap, {dormant: 2, churned: 1})
    signals = scripted_signals("event")
    first = next(s for s in signals if s["kind"] == "dormant")
    second = next(s for s in signals if s["kind"] == "churned")
    produce(
        broker.bootstrap,
        [
            (dormant, None, first["user_id"].encode(), orjson.dumps(first)),
            (churned, None, second["user_id"].encode(), orjson.dumps(second)),
            (dormant, None, first["user_id"].encode(), orjson.dumps(first)),  # redelivery
        ],
    )
    with SignalConsumer(settings, ["dormant", "churned"], dedupe=True) as consumer:
        got = list(consumer)
    assert sorted(s.signal_id for s in got) == sorted([first["signal_id"], second["signal_id"]])
    assert consumer.duplicates == 1
    assert {s.to_dict()["signal_id"]: s.to_dict() for s in got}[first["signal_id"]] == first

    group = unique_name("group")
    with SignalConsumer(settings, ["churned"], group=group) as consumer:
        assert [s.kind for s in consumer] == ["churned"]
    with SignalConsumer(settings, ["churned"], group=group) as consumer:
        assert list(consumer) == []  # the named group committed what it read
