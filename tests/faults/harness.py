"""A system under test for fault scenarios: a Kafka broker, N worker processes, an input log.

:class:`System` starts and kills real ``engagement worker`` processes, publishes input while
remembering where each message landed (partition, offset) and what it should become, and
answers the questions a scenario asks of Kafka rather than of metrics (which reset when a
process dies): how far ingest committed, where the topics end, how much memory a worker holds.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
)

from schemas.errors import BatchDecodeError, BrokerError
from streams.kafka import client_config, consumer_config
from streams.settings import Settings
from streams.testbed.brokers import free_port
from streams.testbed.processes import WorkerProcess
from streams.worker.codecs import decode_batch
from tests.faults.arrival import resumed_fronts
from tests.faults.ledger import Offset
from tests.oracle import RawEvent

Ident = tuple[str, str] | None  # what an input message should become: (user, event id) or None


@dataclass(frozen=True)
class Message:
    """One input record and what it should become.

    A paced message (``at_ms`` set) is sent ``at_ms`` after the first paced one, and its value
    is ``event`` stamped with the moment it is sent (wall-clock scenarios)."""

    key: bytes | None
    value: bytes | None
    ident: Ident
    partition: int = -1  # -1: murmur2 of the key
    at_ms: int | None = None
    event: RawEvent | None = None


def wait_until(check: Callable[[], bool], timeout: float, what: str, every: float = 0.5) -> float:
    """Seconds until ``check()`` held; AssertionError naming ``what`` after ``timeout``.

    A check that cannot reach a process (connection refused or reset: a worker starting,
    stopping or paused) has not held yet; the last such error is named on timeout."""
    started = time.monotonic()
    unreachable: OSError | None = None
    while time.monotonic() - started < timeout:
        try:
            if check():
                return time.monotonic() - started
        except OSError as exc:  # URLError, ConnectionResetError, TimeoutError
            unreachable = exc
        time.sleep(every)
    cause = f" (last check: {unreachable!r})" if unreachable is not None else ""
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}{cause}")


def rss_bytes(pid: int) -> int:
    """Resident set size of ``pid`` from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise BrokerError(f"no VmRSS for pid {pid}")


@dataclass(frozen=True)
class Late:
    """An event that arrived later than the allowed lateness: its user, its time, and the
    newest event time its partition had seen before it (where the clock may have been)."""

    user_id: str
    timestamp_ms: int
    frontier_ms: int


@dataclass
class System:
    """Workers of one app (own topics and groups) on one broker."""

    env: dict[str, str]
    workdir: Path
    workers: dict[str, WorkerProcess] = field(default_factory=dict)
    inputs: dict[Offset, Ident] = field(default_factory=dict)
    sent: list[RawEvent] = field(default_factory=list)  # paced events, as stamped and sent
    calls: dict[Offset, int] = field(default_factory=dict)  # input offset -> publish call number
    acked: dict[Offset, float] = field(default_factory=dict)  # -> monotonic s of its report
    _calls_made: int = 0
    _origin_ms: int | None = None  # wall ms of a paced message's at_ms 0
    _senders: list[tuple[threading.Thread, list[BaseException]]] = field(default_factory=list)

    @property
    def settings(self) -> Settings:
        return Settings.from_env(self.env)

    # -- workers ---------------------------------------------------------------------------
    def start(self, name: str, wait_ready: float = 90.0) -> WorkerProcess:
        worker = self.workers.get(name)
        if worker is None:
            env = {**self.env, "ENGAGEMENT_WEB_PORT": str(free_port())}
            (self.workdir / name).mkdir(parents=True, exist_ok=True)
            worker = WorkerProcess(env, workdir=self.workdir / name, name=name)
            self.workers[name] = worker
        worker.start(wait_ready=wait_ready)
        return worker

    def live(self) -> list[WorkerProcess]:
        return [w for w in self.workers.values() if w.running]

    def summed(self) -> dict[str, float]:
        total: dict[str, float] = {}
        for worker in self.live():
            for name, value in worker.metrics().items():
                total[name] = total.get(name, 0.0) + value
        return total

    def stop_all(self) -> None:
        for worker in self.workers.values():
            worker.stop()

    # -- input -----------------------------------------------------------------------------
    def publish(self, messages: Sequence[Message]) -> None:
        """Publish and remember each message's (partition, offset) -> ident."""
        settings = self.settings
        producer = Producer(
            client_config(settings, **{"partitioner": "murmur2_random", "linger.ms": 20,
                                        "message.max.bytes": 2_000_000, "acks": "all"})
        )  # fmt: skip
        failures: list[str] = []
        call = self._calls_made = self._calls_made + 1

        def on_delivery(ident: Ident) -> Callable[[Any, Any], None]:
            def delivered(err: Any, msg: Any) -> None:
                if err is not None:
                    failures.append(str(err))
                else:
                    where = (msg.partition(), msg.offset())
                    self.inputs[where] = ident
                    self.calls[where] = call
                    self.acked[where] = time.monotonic()

            return delivered

        for m in messages:
            extra: dict[str, Any] = {"partition": m.partition} if m.partition >= 0 else {}
            extra["on_delivery"] = on_delivery(m.ident)
            value = m.value if m.at_ms is None else self._paced(m, producer)
            while True:
                try:
                    producer.produce(settings.input_topic, value, m.key, **extra)
                    break
                except BufferError:
                    producer.poll(0.1)
            producer.poll(0)
        if producer.flush(60) != 0 or failures:
            raise BrokerError(f"input not delivered: {failures[:3]}")

    def late_events(
        self, events: Sequence[RawEvent], lateness_ms: int, idle_s: float
    ) -> list[Late]:
        """The valid events that arrived later than the allowed lateness: behind the newest
        event time published before them on their partition, or (the partitions went idle
        between two publish calls, so the watermark followed the newest of any) before them
        in an earlier call, or (their partition resumed after ``idle_s`` of silence:
        :mod:`tests.faults.arrival`) on another partition before it resumed, by more than
        ``lateness_ms``. Only each event's first copy counts."""
        times = {(e.user_id, e.event_id): e.timestamp_ms for e in events}
        timed = {
            where: times[i] for where, i in self.inputs.items() if i is not None and i in times
        }
        resumed = resumed_fronts(self.acked, timed, idle_s)
        newest_call: dict[int, int] = {}
        for where, ident in self.inputs.items():
            if ident in times:
                call = self.calls[where]
                newest_call[call] = max(newest_call.get(call, 0), times[ident])
        late: list[Late] = []
        seen: set[tuple[str, str]] = set()
        frontier: dict[int, int] = {}  # partition -> newest event time read so far
        for (partition, position), ident in sorted(self.inputs.items()):
            if ident is None or ident not in times:
                continue
            call = self.calls[(partition, position)]
            before = max((ms for c, ms in newest_call.items() if c < call), default=0)
            front = max(frontier.get(partition, 0), before, resumed.get((partition, position), 0))
            ms = times[ident]
            if ident not in seen and ms < front - lateness_ms:
                late.append(Late(ident[0], ms, front))
            seen.add(ident)
            frontier[partition] = max(frontier.get(partition, 0), ms)
        return late

    def publish_in_background(self, messages: Sequence[Message]) -> None:
        """:meth:`publish` in a thread, so that a fault can strike while paced input is sent;
        :meth:`wait_published` joins it (and raises what it raised)."""
        errors: list[BaseException] = []

        def send() -> None:
            try:
                self.publish(messages)
            except BaseException as exc:  # re-raised by wait_published
                errors.append(exc)

        thread = threading.Thread(target=send, name="publisher", daemon=True)
        thread.start()
        self._senders.append((thread, errors))

    def wait_published(self, timeout: float = 300.0) -> None:
        for thread, errors in self._senders:
            thread.join(timeout)
            if thread.is_alive():
                raise BrokerError("input still being published")
            if errors:
                raise errors[0]
        self._senders.clear()

    def _paced(self, m: Message, producer: Producer) -> bytes:
        """Wait for ``m``'s moment and stamp its event with it. After a pause between two
        publish calls (a worker stopped meanwhile) the rest keep their gaps from now on."""
        assert m.at_ms is not None and m.event is not None
        now = int(time.time() * 1000)
        if self._origin_ms is None or now - (self._origin_ms + m.at_ms) > 1_000:
            self._origin_ms = now - m.at_ms
        due = self._origin_ms + m.at_ms
        while (wait := due - int(time.time() * 1000)) > 0:
            producer.poll(min(wait, 50) / 1000)
        event = replace(m.event, timestamp_ms=due)
        self.sent.append(event)
        return orjson.dumps(event.canonical())

    # -- what Kafka says -------------------------------------------------------------------
    def _consumer(self, group: str) -> Consumer:
        return Consumer(consumer_config(self.settings, group))

    def committed_and_end(self, group: str, topic: str) -> tuple[int, int]:
        """(sum of ``group``'s committed offsets, sum of end offsets) over ``topic``."""
        consumer = self._consumer(group)
        try:
            parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
            tps = [TopicPartition(topic, p) for p in sorted(parts)]
            committed = sum(max(tp.offset, 0) for tp in consumer.committed(tps, timeout=10))
            end = sum(consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in tps)
            return committed, end
        finally:
            consumer.close()

    def ingest_position(self) -> tuple[int, int]:
        """(committed, end) of the ingest group on the input topic."""
        settings = self.settings
        return self.committed_and_end(f"{settings.app_id}-ingest", settings.input_topic)

    def ingest_caught_up(self) -> bool:
        try:
            committed, end = self.ingest_position()
        except KafkaException:  # the coordinator moves while a broker restarts: ask again
            return False
        return committed == end

    def uncommitted_events(self, group: str, topic: str) -> tuple[int, int]:
        """(records, events) of ``events.by_user`` batches after ``group``'s committed offsets:
        what a restart re-reads (watermark-only batches carry no events)."""
        consumer = self._consumer(f"{group}-probe")
        try:
            parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
            probe = self._consumer(group)
            tps = probe.committed([TopicPartition(topic, p) for p in sorted(parts)], timeout=10)
            probe.close()
            ends = {tp.partition: consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in tps}
            start = [TopicPartition(topic, tp.partition, max(tp.offset, 0)) for tp in tps]
            consumer.assign(start)
            records = events = 0
            left = sum(ends[tp.partition] - max(tp.offset, 0) for tp in tps)
            while records < left:
                for msg in consumer.consume(1000, timeout=2.0):
                    value = msg.value()
                    if msg.error() is None:
                        records += 1
                        with contextlib.suppress(BatchDecodeError):  # quarantined ones
                            events += len(decode_batch(value)[2])
            return records, events
        finally:
            consumer.close()

    def replication(self, topic: str) -> tuple[int, str]:
        """(fewest replicas of any partition, the topic's min.insync.replicas) of ``topic``."""
        admin = AdminClient(client_config(self.settings))
        parts = admin.list_topics(topic, timeout=10).topics[topic].partitions.values()
        resource = ConfigResource("topic", topic)
        entries = admin.describe_configs([resource])[resource].result(30)
        return min(len(p.replicas) for p in parts), str(entries["min.insync.replicas"].value)

    def leaders(self, topic: str) -> dict[int, int]:
        """partition -> the node id leading it (-1 while none does) of ``topic``."""
        return {number: leader for number, (leader, _) in self._partitions(topic).items()}

    def in_sync(self, topic: str, node: int) -> bool:
        """``node`` is an in-sync replica of every partition of ``topic``."""
        return all(node in isr for _, isr in self._partitions(topic).values())

    def _partitions(self, topic: str) -> dict[int, tuple[int, list[int]]]:
        admin = AdminClient(client_config(self.settings))
        parts = admin.list_topics(topic, timeout=10).topics[topic].partitions
        return {number: (p.leader, list(p.isrs)) for number, p in parts.items()}

    def set_topic_config(self, topic: str, name: str, value: str) -> None:
        """Set one topic config, leaving the others (a changelog stays compacted)."""
        admin = AdminClient(client_config(self.settings))
        entry = ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)
        resource = ConfigResource("topic", topic, incremental_configs=[entry])
        for future in admin.incremental_alter_configs([resource]).values():
            future.result(30)

    def committed(self, group: str, topic: str) -> dict[int, int]:
        """``group``'s committed offset per partition of ``topic`` (-1: none)."""
        consumer = self._consumer(group)
        try:
            parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
            tps = [TopicPartition(topic, p) for p in sorted(parts)]
            return {tp.partition: tp.offset for tp in consumer.committed(tps, timeout=10)}
        finally:
            consumer.close()

    def produce(
        self, topic: str, records: Sequence[tuple[int, bytes | None, bytes | None]]
    ) -> list[int]:
        """Write ``(partition, key, value)`` records straight to ``topic``; their offsets."""
        producer = Producer(client_config(self.settings, acks="all"))
        offsets: list[int] = [-1] * len(records)

        def delivered(i: int) -> Callable[[Any, Any], None]:
            def report(err: Any, msg: Any) -> None:
                if err is None:
                    offsets[i] = msg.offset()

            return report

        for i, (partition, key, value) in enumerate(records):
            producer.produce(topic, value, key, partition, on_delivery=delivered(i))
        if producer.flush(30) != 0 or -1 in offsets:
            raise BrokerError(f"records not delivered to {topic}")
        return offsets
