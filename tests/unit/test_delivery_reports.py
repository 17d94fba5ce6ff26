"""The compiled delivery callback keeps the highest acknowledged offset per (topic, partition)
and every failure, in report order. Real confluent-kafka ``Message`` objects, no broker."""

from __future__ import annotations

from confluent_kafka import KafkaError, Message
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.logic.reports import DeliveryReports

REPORT = st.tuples(
    st.sampled_from(["changelog", "signals"]),
    st.integers(0, 3),
    st.integers(0, 1_000),
    st.booleans(),  # failed
)


@settings(max_examples=200, deadline=None)
@given(st.lists(REPORT, max_size=60))
def test_keeps_the_highest_offset_per_partition_and_every_failure(
    reports: list[tuple[str, int, int, bool]],
) -> None:
    callback = DeliveryReports()
    want_acked: dict[tuple[str, int], int] = {}
    want_failed: list[tuple[str, int, bytes]] = []
    for n, (topic, partition, offset, failed) in enumerate(reports):
        msg = Message(topic=topic, partition=partition, offset=offset, value=b"%d" % n)
        if failed:
            callback(KafkaError(KafkaError._MSG_TIMED_OUT), msg)
            want_failed.append((topic, partition, b"%d" % n))
        else:
            callback(None, msg)
            tp = (topic, partition)
            want_acked[tp] = max(want_acked.get(tp, -1), offset)
    assert callback.acked == want_acked
    taken = callback.take_failed()
    assert [(m.topic(), m.partition(), m.value()) for _, m in taken] == want_failed
    assert all(err.code() == KafkaError._MSG_TIMED_OUT for err, _ in taken)
    assert callback.take_failed() == []
    assert callback.acked == want_acked  # for the producer's life


def test_a_report_without_its_place_moves_no_offset() -> None:
    callback = DeliveryReports()
    callback(None, Message(topic="t", partition=0))  # no offset
    callback(None, Message(topic="t", offset=4))  # no partition
    assert callback.acked == {}
