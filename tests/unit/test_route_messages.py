"""The ingest step's one pass over consumed messages (``Router.route_messages``) routes exactly as
``Router.route`` over the same records, and reads the partition ends, record timestamps and
consumer errors the ingest service needs. Real confluent-kafka ``Message`` objects, no broker."""

from __future__ import annotations

import orjson
import pytest
from confluent_kafka import TIMESTAMP_CREATE_TIME, TIMESTAMP_NOT_AVAILABLE, KafkaError, Message
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.logic.ingest import limits_from
from agents.logic.routing import RawRecord, Routed, Router

NOW = 1_767_225_600_000
LIMITS = limits_from(65_536, 600, [1], 512 * 1024)
EOF = KafkaError._PARTITION_EOF


def event(user: str, offset: int, event_type: str = "page_view") -> bytes:
    return orjson.dumps(
        {
            "event_id": f"e-{user}-{offset}",
            "user_id": user,
            "event_type": event_type,
            "timestamp": NOW - 60_000 + offset,
        }
    )


def record(
    topic: str,
    partition: int,
    offset: int,
    value: bytes | None,
    stamp: tuple[int, int] | None = None,
) -> Message:
    return Message(
        topic=topic,
        partition=partition,
        offset=offset,
        key=b"k%d" % offset,
        value=value,
        timestamp=stamp or (TIMESTAMP_CREATE_TIME, NOW - 1_000 + offset),
    )


def end_of(topic: str, partition: int, offset: int | None = None) -> Message:
    if offset is None:
        return Message(topic=topic, partition=partition, error=KafkaError(EOF))
    return Message(topic=topic, partition=partition, offset=offset, error=KafkaError(EOF))


def route(router: Router, messages: list[Message]) -> Routed:
    return router.route_messages(messages, NOW, end_code=EOF, no_timestamp=TIMESTAMP_NOT_AVAILABLE)


def mixed_batch() -> list[Message]:
    values = [
        event("ann", 0),
        b"{not json",
        event("bob", 2, "signup"),
        orjson.dumps({"event_id": "x", "event_type": "t", "timestamp": NOW}),  # no user id
        event("cy", 4),
        b"",
    ]
    head = [record("in", 0, offset, value) for offset, value in enumerate(values)]
    tail = [record("in", 1, 10 + i, event(f"u{i}", 10 + i)) for i in range(20)]
    return [*head, *tail]


def as_raw(messages: list[Message]) -> list[RawRecord]:
    return [
        RawRecord(m.topic() or "", m.partition() or 0, m.offset() or 0, m.key(), m.value(), None)
        for m in messages
    ]


def test_routes_as_route_does_over_the_same_records() -> None:
    messages = mixed_batch()
    got = route(Router(4, LIMITS), messages)
    want = Router(4, LIMITS).route(as_raw(messages), NOW)
    assert got.batches == want.batches
    assert got.next_offsets == want.next_offsets == {("in", 0): 6, ("in", 1): 30}
    assert got.newest_ms == want.newest_ms
    assert [(d.key, d.value, d.headers, d.rejection) for d in got.dead] == [
        (d.key, d.value, d.headers, d.rejection) for d in want.dead
    ]
    assert [d.key for d in got.dead] == [b"k1", b"k3", b"k5"]
    assert got.read == want.read == len(messages)
    assert got.event_types == want.event_types == {"page_view": 22, "signup": 1}
    assert sum(len(batch) for batch in got.batches.values()) == 23


def test_reads_ends_and_record_timestamps_per_partition() -> None:
    messages = [
        record("in", 0, 0, event("ann", 0)),
        end_of("in", 0, 1),
        record("in", 1, 5, event("bob", 5), stamp=(TIMESTAMP_NOT_AVAILABLE, 0)),
        record("in", 2, 7, event("cy", 7)),
        end_of("in", 2, 8),
        record("in", 2, 8, event("cy", 8)),  # read after its end: not at the end any more
        end_of("in", 3, 40),  # a restart at the end: an end, no record
        end_of("in", 1),  # an end without its offset
    ]
    routed = route(Router(4, LIMITS), messages)
    assert routed.at_end == {("in", 0): True, ("in", 1): True, ("in", 2): False, ("in", 3): True}
    assert routed.end_offsets == {("in", 0): 1, ("in", 1): -1, ("in", 2): 8, ("in", 3): 40}
    # no timestamp: read now
    assert routed.read_ms == {("in", 0): NOW - 1_000, ("in", 1): NOW, ("in", 2): NOW - 992}
    assert routed.read == 4
    assert not routed.errors


def test_other_errors_are_kept_and_route_nothing() -> None:
    failure = KafkaError(KafkaError._TRANSPORT)
    messages = [
        Message(error=failure),
        Message(topic="in", partition=0, error=KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART)),
        record("in", 0, 3, event("ann", 3)),
    ]
    routed = route(Router(4, LIMITS), messages)
    assert [e.code() for e in routed.errors] == [
        KafkaError._TRANSPORT,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
    ]
    assert routed.read == 1 and routed.next_offsets == {("in", 0): 4}
    assert routed.at_end == {("in", 0): False}


def test_a_record_without_its_place_stops_the_step() -> None:
    with pytest.raises(ValueError, match="without its place"):
        route(Router(4, LIMITS), [Message(value=event("ann", 0))])


@st.composite
def interleaved(draw: st.DrawFn) -> list[Message]:
    """Records of four partitions in runs and interleaved, valid and not, with and without a
    timestamp, partition ends (with and without their offset) and other errors among them."""
    offsets = [0, 0, 0, 0]
    out: list[Message] = []
    for kind, partition, valid, stamped in draw(
        st.lists(
            st.tuples(
                st.sampled_from(["record"] * 6 + ["end", "end_no_offset", "error"]),
                st.integers(0, 3),
                st.booleans(),
                st.booleans(),
            ),
            max_size=40,
        )
    ):
        offset = offsets[partition]
        if kind == "end":
            out.append(end_of("in", partition, offset))
        elif kind == "end_no_offset":
            out.append(end_of("in", partition))
        elif kind == "error":
            out.append(Message(topic="in", partition=partition, error=KafkaError(1)))
        else:
            stamp = (
                TIMESTAMP_CREATE_TIME if stamped else TIMESTAMP_NOT_AVAILABLE,
                NOW - 5_000 + offset,
            )
            value = event(f"u{offset % 3}", offset) if valid else b"{bad"
            out.append(record("in", partition, offset, value, stamp))
            offsets[partition] += 1
    return out


def expected_clocks(messages: list[Message]) -> dict[str, dict[tuple[str, int], int | bool]]:
    """The per-partition reading of the messages, one message at a time, written out here."""
    want: dict[str, dict[tuple[str, int], int | bool]] = {
        "at_end": {}, "end_offsets": {}, "read_ms": {}, "next_offsets": {}, "newest_ms": {}
    }  # fmt: skip
    for m in messages:
        source = (m.topic() or "", m.partition() or 0)
        error = m.error()
        if error is not None:
            if error.code() == EOF:
                want["at_end"][source] = True
                end = m.offset()
                want["end_offsets"][source] = -1 if end is None else end
            continue
        want["at_end"][source] = False
        want["next_offsets"][source] = (m.offset() or 0) + 1
        kind, stamp = m.timestamp()
        stamp = NOW if kind == TIMESTAMP_NOT_AVAILABLE else stamp
        want["read_ms"][source] = max(stamp, int(want["read_ms"].get(source, 0)))
        if m.value() != b"{bad":
            event_ms = orjson.loads(m.value() or b"")["timestamp"]
            want["newest_ms"][source] = max(event_ms, int(want["newest_ms"].get(source, 0)))
    return want


@settings(max_examples=300, deadline=None)
@given(interleaved())
def test_runs_of_a_partition_read_as_one_message_at_a_time(messages: list[Message]) -> None:
    routed = route(Router(4, LIMITS), messages)
    want = expected_clocks(messages)
    for name, values in want.items():
        assert getattr(routed, name) == values, name
    records = [m for m in messages if m.error() is None]
    assert routed.read == len(records)
    assert len(routed.dead) == sum(m.value() == b"{bad" for m in records)
    errors = [m.error() for m in messages]
    assert [e.code() for e in routed.errors] == [
        e.code() for e in errors if e is not None and e.code() != EOF
    ]
