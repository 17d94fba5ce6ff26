"""What the topics say happened: every input message accounted for, every signal expected.

After a fault scenario the metrics of killed processes are gone, so the books are kept from
the topics themselves:

* input messages are known by (partition, offset) from the producer's delivery reports;
* a valid message is one whose (user id, event id) appears in an ``events.by_user`` batch;
  a dead-lettered one is one whose source offset the ``engagement.error.*`` headers name,
  reduced or not (a reduced one is kept apart too, with its headers);
  re-deliveries after a crash show up as extra copies and are counted apart;
* a by_user record that cannot be decoded must be in the quarantine topic (its headers name its
  by_user partition and offset), and nothing of it in the expected signals;
* the delivered signals are read back from the signal topics; what was expected of them is
  the independent oracle's business (:mod:`tests.faults.verdict`), not a replay of the worker's
  own output.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from schemas.errors import BatchDecodeError
from schemas.records import SIGNAL_KINDS, Signal
from streams.kafka import consumer_config
from streams.settings import Settings
from streams.topics import Topics
from streams.worker.codecs import decode_batch

Offset = tuple[int, int]  # (partition, offset) of an input message
ERROR = "engagement.error."


@dataclass
class Ledger:
    """The books of one scenario run."""

    valid_ids: set[tuple[str, str]] = field(default_factory=set)  # (user, event id) in by_user
    by_user_copies: int = 0  # events in by_user batches, re-deliveries included
    dead: set[Offset] = field(default_factory=set)  # input offsets dead-lettered
    dead_copies: int = 0
    headerless: int = 0  # dead letters without engagement.error.* headers (contract broken)
    undecodable: set[Offset] = field(default_factory=set)  # by_user records that cannot be read
    quarantined: dict[Offset, str] = field(default_factory=dict)  # by_user offset -> reason
    quarantine_copies: int = 0
    reduced: dict[Offset, dict[str, bytes]] = field(default_factory=dict)  # cut: their headers
    by_user_largest: int = 0  # bytes of the largest by_user record value
    signals: list[Signal] = field(default_factory=list)

    def account(self, inputs: dict[Offset, tuple[str, str] | None]) -> Accounts:
        """``inputs``: offset -> the (user, event id) it should become, or None (invalid)."""
        valid = {o for o, ident in inputs.items() if ident is not None and ident in self.valid_ids}
        dead = self.dead & set(inputs)
        lost = set(inputs) - valid - dead
        wrong = {o for o in dead if inputs[o] is not None} | {o for o in valid if o in self.dead}
        return Accounts(len(inputs), len(valid), len(dead), sorted(lost)[:10], len(wrong))

    def signal_check(self) -> SignalCheck:
        counts = Counter(s.signal_id for s in self.signals)
        by_id: dict[str, set[tuple[str, str, int]]] = {}
        for s in self.signals:
            by_id.setdefault(s.signal_id, set()).add((s.user_id, s.kind, s.event_time_ms))
        inconsistent = sorted(i for i, variants in by_id.items() if len(variants) > 1)
        return SignalCheck(
            delivered=len(counts),
            duplicated=sum(n - 1 for n in counts.values()),
            inconsistent=inconsistent,
        )


@dataclass(frozen=True)
class Accounts:
    events_in: int
    valid: int
    dead_lettered: int
    lost: list[Offset]
    misrouted: int

    @property
    def balanced(self) -> bool:
        return self.events_in == self.valid + self.dead_lettered and not self.misrouted


@dataclass(frozen=True)
class SignalCheck:
    delivered: int  # distinct signal ids
    duplicated: int  # copies beyond the first
    inconsistent: list[str]  # one signal id, different contents: ids are not deterministic

    @property
    def ok(self) -> bool:
        return not self.inconsistent


def read_topic(
    settings: Settings, topic: str, timeout: float = 30.0, deadline_s: float = 120.0
) -> Iterator[Any]:
    """Every record of ``topic`` from the beginning to its end as it was when asked, partition
    by partition in offset order (a fresh consumer group, nothing committed).

    The ends are the high watermarks taken first, not ``_PARTITION_EOF``: a topic written to
    all the time (the clock records reach every by_user partition) need not report an end to a
    reader, and a read that cannot finish fails naming where it stands."""
    consumer = Consumer(consumer_config(settings, f"{settings.app_id}-ledger"))
    try:
        metadata = consumer.list_topics(topic, timeout=timeout).topics[topic]
        marks = {
            p: _marks_of(consumer, TopicPartition(topic, p), timeout) for p in metadata.partitions
        }
        ends = {p: high for p, (_, high) in marks.items()}
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        pending = {p for p, (low, high) in marks.items() if high > low}
        records: list[Any] = []
        give_up, last_error = time.monotonic() + deadline_s, None
        while pending:
            for msg in consumer.consume(10_000, timeout=1.0):
                if msg.error() is None:
                    records.append(msg)
                else:
                    last_error = msg.error()
            positions = consumer.position([TopicPartition(topic, p) for p in pending])
            pending -= {tp.partition for tp in positions if tp.offset >= ends[tp.partition]}
            if pending and time.monotonic() > give_up:
                where = {tp.partition: (tp.offset, ends[tp.partition]) for tp in positions}
                raise AssertionError(
                    f"{topic}: not read to the end in {deadline_s:.0f} s "
                    f"(partition: (position, end)) {where}; last error {last_error}"
                )
        records.sort(key=lambda m: (m.partition(), m.offset()))
        yield from records
    finally:
        consumer.close()


def _marks_of(consumer: Consumer, where: TopicPartition, timeout: float) -> tuple[int, int]:
    """The partition's (low, high) watermarks, asked again while a new leader's are not caught
    up yet (OFFSET_NOT_AVAILABLE after a leader change)."""
    give_up = time.monotonic() + timeout
    while True:
        try:
            low, high = consumer.get_watermark_offsets(where, timeout=timeout)
            return int(low), int(high)
        except KafkaException as error:
            if time.monotonic() > give_up or error.args[0].fatal():
                raise
            time.sleep(0.5)


def build_ledger(settings: Settings) -> Ledger:
    """Read by_user, dead_letter, quarantine and the signal topics."""
    ledger = Ledger()
    topics = Topics.of(settings)
    for msg in read_topic(settings, topics.by_user):
        try:
            events = decode_batch(msg.value())[2]
        except BatchDecodeError:
            ledger.undecodable.add((msg.partition(), msg.offset()))
            continue
        ledger.by_user_largest = max(ledger.by_user_largest, len(msg.value()))
        ledger.by_user_copies += len(events)
        ledger.valid_ids.update((e.user_id, e.event_id) for e in events)
    for msg in read_topic(settings, Topics.of(settings).dead_letter):
        headers = dict(msg.headers() or [])
        ledger.dead_copies += 1
        partition = headers.get("engagement.error.partition")
        offset = headers.get("engagement.error.offset")
        if partition is not None and offset is not None:
            ledger.dead.add((int(partition), int(offset)))
            if "engagement.error.reduced" in headers:
                ledger.reduced[(int(partition), int(offset))] = headers
        else:
            ledger.headerless += 1
    for msg in read_topic(settings, topics.quarantine):
        headers = {name: raw.decode() for name, raw in msg.headers() or [] if raw is not None}
        ledger.quarantine_copies += 1
        where = (
            int(headers["engagement.error.partition"]),
            int(headers["engagement.error.offset"]),
        )
        ledger.quarantined[where] = headers["engagement.error.reason"]
    for kind in SIGNAL_KINDS:
        for msg in read_topic(settings, Topics.of(settings).signals[kind]):
            ledger.signals.append(Signal.from_json(msg.value()))
    return ledger
