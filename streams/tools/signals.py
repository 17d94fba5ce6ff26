"""Reading the signal topics: a typed :class:`Signal` and a confluent-kafka :class:`SignalConsumer`.

``engagement signals [--kind KIND ...] [--follow] [--group G]`` prints the signals as JSON lines.

* Without ``--group`` the consumer uses a fresh, unique consumer group: it reads every signal
  from the beginning and commits nothing, so it never disturbs a real consumer.
* With ``--group G`` it resumes from G's committed offsets and commits what it has printed.
* Without ``--follow`` it stops at the end of the topics (``enable.partition.eof``): every
  partition of the chosen topics has reported its end once. With ``--follow`` it keeps waiting.

Delivery is at-least-once; the command drops repeats of a ``signal_id`` it has already printed.
"""

from __future__ import annotations

import argparse
import logging
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TextIO

from schemas.errors import BrokerError
from schemas.records import SIGNAL_KINDS, Signal
from streams.kafka import consumer_config
from streams.settings import Settings
from streams.topics import Topics

log = logging.getLogger(__name__)

_DEDUPE_LIMIT = 1_000_000  # ids remembered; the oldest are forgotten first


def signal_topics(settings: Settings, kinds: Sequence[str] = SIGNAL_KINDS) -> list[str]:
    """The topic of each kind, in the order given (unknown kinds raise ValueError)."""
    return Topics.of(settings).signal_topics(kinds)


ConsumerFactory = Callable[[dict[str, Any]], Any]


def _kafka_consumer(config: dict[str, Any]) -> Any:
    from confluent_kafka import Consumer

    return Consumer(config)


class SignalConsumer:
    """Signals of the chosen kinds, from Kafka.

    ``group=None``: a fresh unique group, from the beginning, no commits. A named group resumes
    from its committed offsets and commits each signal once the caller asks for the next one
    (and on :meth:`close`). ``follow=False`` stops at the end of the topics; ``follow=True``
    subscribes (partitions shared with the group's other members) and keeps waiting.
    ``dedupe=True`` drops a signal whose ``signal_id`` was already returned.
    """

    def __init__(
        self,
        settings: Settings,
        kinds: Sequence[str] = SIGNAL_KINDS,
        *,
        group: str | None = None,
        follow: bool = False,
        dedupe: bool = False,
        topics: Sequence[str] | None = None,
        consumer_factory: ConsumerFactory = _kafka_consumer,
    ) -> None:
        self.topics = list(topics) if topics is not None else signal_topics(settings, kinds)
        self.group = group or f"{settings.app_id}-signals-{uuid.uuid4().hex[:12]}"
        self.commits = group is not None
        self.follow = follow
        self.dedupe = dedupe
        self.duplicates = 0
        self.undecodable = 0
        self._seen: dict[str, None] = {}
        self._pending: Any = None  # message handed out, stored for commit on the next poll
        self._eof: set[tuple[str, int]] = set()
        self._assigned: set[tuple[str, int]] = set()
        self._done = False
        config = consumer_config(
            settings,
            self.group,
            **{"enable.partition.eof": not follow, "enable.auto.commit": self.commits},
        )
        self._consumer = consumer_factory(config)
        if follow:
            self._consumer.subscribe(self.topics)
        else:
            self._assign_all()

    def _assign_all(self) -> None:
        from confluent_kafka import OFFSET_BEGINNING, OFFSET_STORED, TopicPartition

        start = OFFSET_STORED if self.commits else OFFSET_BEGINNING
        assignment = []
        for topic in self.topics:
            metadata = self._consumer.list_topics(topic, timeout=10.0).topics.get(topic)
            if metadata is None or metadata.error is not None or not metadata.partitions:
                log.warning("signal topic %s does not exist (yet); nothing to read there", topic)
                continue
            for number in sorted(metadata.partitions):
                assignment.append(TopicPartition(topic, number, start))
                self._assigned.add((topic, number))
        if assignment:
            self._consumer.assign(assignment)
        else:
            self._done = True

    @property
    def done(self) -> bool:
        """True once every partition has reported its end (never when following)."""
        return self._done

    def poll(self, timeout: float = 1.0) -> Signal | None:
        """The next signal, or None if none came within ``timeout`` or the end was reached."""
        self._store_pending()
        if self._done:
            return None
        message = self._consumer.poll(timeout)
        if message is None:
            return None
        error = message.error()
        if error is not None:
            self._on_error(message, error)
            return None
        try:
            signal = Signal.from_json(message.value() or b"")
        except ValueError as exc:
            self.undecodable += 1
            log.warning("skipped a record of %s[%d]: %s", message.topic(), message.partition(), exc)
            self._pending = message
            return None
        self._pending = message
        if self.dedupe and self._is_repeat(signal.signal_id):
            return None
        return signal

    def _is_repeat(self, signal_id: str) -> bool:
        if signal_id in self._seen:
            self.duplicates += 1
            return True
        self._seen[signal_id] = None
        if len(self._seen) > _DEDUPE_LIMIT:
            del self._seen[next(iter(self._seen))]
        return False

    def _on_error(self, message: Any, error: Any) -> None:
        from confluent_kafka import KafkaError

        if error.code() == KafkaError._PARTITION_EOF:
            self._eof.add((message.topic(), message.partition()))
            if not self.follow and self._eof >= self._assigned:
                self._done = True
            return
        if error.fatal():
            raise BrokerError(f"signal consumer: {error.str()}")
        log.warning("signal consumer: %s", error.str())

    def _store_pending(self) -> None:
        if self._pending is not None and self.commits:
            self._consumer.store_offsets(message=self._pending)
        self._pending = None

    def __iter__(self) -> Iterator[Signal]:
        """Signals until the end of the topics (or forever when following)."""
        while not self._done:
            signal = self.poll(1.0)
            if signal is not None:
                yield signal
        self._store_pending()

    def close(self) -> None:
        """Commit what was handed out (named group only) and leave."""
        self._store_pending()
        if self.commits:
            try:
                self._consumer.commit(asynchronous=False)
            except Exception as exc:  # nothing stored yet is not a failure
                log.debug("final commit: %s", exc)
        self._consumer.close()

    def __enter__(self) -> SignalConsumer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def signals_command(
    settings: Settings,
    kinds: Sequence[str] | None,
    follow: bool,
    group: str | None,
    out: TextIO = sys.stdout,
    *,
    dedupe: bool = True,
    consumer_factory: ConsumerFactory = _kafka_consumer,
) -> int:
    """Print the signals as JSON lines; a summary goes to stderr. Exit status."""
    printed = 0
    consumer = SignalConsumer(
        settings,
        kinds or SIGNAL_KINDS,
        group=group,
        follow=follow,
        dedupe=dedupe,
        consumer_factory=consumer_factory,
    )
    try:
        for signal in consumer:
            out.write(signal.to_json().decode() + "\n")
            out.flush()
            printed += 1
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
    print(
        f"{printed} signal(s) from {', '.join(consumer.topics)}"
        f" ({consumer.duplicates} duplicate(s) dropped, {consumer.undecodable} unreadable)",
        file=sys.stderr,
    )
    return 0


DESCRIPTION = """\
Print signals as JSON lines, one per signal, from the signal topics (all kinds, or those given
with --kind), then a summary line on stderr. Repeats of a signal_id are dropped.

Without --group: a fresh consumer group that reads everything from the beginning and commits
nothing, so it never disturbs a real consumer. With --group G: resumes from G's committed
offsets and commits what it printed. Without --follow it stops at the end of the topics."""


def _run(args: argparse.Namespace) -> int:
    from streams.kafka import check_brokers

    settings = Settings.from_env_or_exit()
    check_brokers(settings)
    return signals_command(settings, args.kind, args.follow, args.group)


def add_signals_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``engagement signals`` on an ``add_subparsers()`` object."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "signals",
        help="print signals from the signal topics as JSON lines",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--kind",
        action="extend",
        nargs="+",
        choices=SIGNAL_KINDS,
        default=None,
        metavar="KIND",
        help=f"signal kinds to read: {', '.join(SIGNAL_KINDS)} (one or more, the option may "
        "repeat; default: all)",
    )
    parser.add_argument("--follow", action="store_true", help="keep waiting for new signals")
    parser.add_argument(
        "--group",
        default=None,
        help="consumer group that resumes and commits (default: a fresh one, from the start)",
    )
    parser.set_defaults(func=_run)
    return parser
