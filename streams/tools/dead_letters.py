"""``engagement dead-letters``: what is in the dead-letter topic, and re-publishing chosen ones.

    dead-letter topic --read_dead_letters (every partition, start to current end)--> DeadLetter
        list:    counts per reason, and a few samples of each         (reads, writes nothing)
        --json:  every dead letter as schemas/dead_letter.schema.json renders it, one per line
        --replay --reason R ...: the dead letters of those reasons, key, value and original
                 headers byte for byte, to the input topic (engagement.error.* headers left off)

A reduced dead letter (``engagement.error.reduced`` says ``value_truncated`` or
``value_digest``) is never replayed: its value is not the original. Replay reads the topic up
to the end it had when the command started, so dead letters that a replay produces again (the
fix was not enough) are not replayed in the same run. Replaying twice publishes twice; the
worker drops an event whose event_id it saw recently for the same user.
"""

from __future__ import annotations

import argparse
import base64
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

import orjson

from agents.logic.ingest import ERROR_HEADER_PREFIX
from agents.logic.shapes import Reason
from schemas.errors import BrokerError, UsageError
from streams.settings import Settings
from streams.topics import Topics

REASONS = tuple(str(reason) for reason in Reason)
_INT_FIELDS = ("partition", "offset", "timestamp", "original_bytes")
SAMPLE_CHARS = 160

Headers = list[tuple[str, bytes | None]]
ProducerFactory = Callable[[Settings], Any]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One record of the dead-letter topic, where it is there, and its error headers."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers

    @property
    def error(self) -> dict[str, str]:
        """The ``engagement.error.*`` headers, decoded, by field name (``reason``, ...)."""
        return {
            name.removeprefix(ERROR_HEADER_PREFIX): (raw or b"").decode(errors="replace")
            for name, raw in self.headers
            if name.startswith(ERROR_HEADER_PREFIX)
        }

    @property
    def reason(self) -> str:
        return self.error.get("reason", "unknown")

    @property
    def reduced(self) -> bool:
        """The value is not the original (a prefix of it, or only its digest)."""
        cut = self.error.get("reduced", "").split(",")
        return "value_truncated" in cut or "value_digest" in cut

    @property
    def original_headers(self) -> Headers:
        return [(n, v) for n, v in self.headers if not n.startswith(ERROR_HEADER_PREFIX)]

    def to_json(self) -> dict[str, Any]:
        """The rendering of ``schemas/dead_letter.schema.json`` (bytes as base64)."""
        error: dict[str, Any] = dict(self.error)
        for name in _INT_FIELDS:
            if name in error and error[name].lstrip("-").isdigit():
                error[name] = int(error[name])
        return {
            "key": _b64(self.key),
            "value": _b64(self.value),
            "headers": [[name, _b64(raw)] for name, raw in self.headers],
            "error": error,
        }


def _b64(raw: bytes | None) -> str | None:
    return None if raw is None else base64.b64encode(raw).decode()


@dataclass(slots=True)
class ReasonSummary:
    count: int = 0
    reduced: int = 0
    samples: list[DeadLetter] = field(default_factory=list)


def add(found: dict[str, ReasonSummary], letter: DeadLetter, samples: int) -> None:
    """Count ``letter`` under its reason, keeping the first ``samples`` of each reason."""
    entry = found.setdefault(letter.reason, ReasonSummary())
    entry.count += 1
    entry.reduced += letter.reduced
    if len(entry.samples) < samples:
        entry.samples.append(letter)


def by_count(found: dict[str, ReasonSummary]) -> dict[str, ReasonSummary]:
    """Most frequent reason first (ties by name)."""
    return dict(sorted(found.items(), key=lambda item: (-item[1].count, item[0])))


def summarise(letters: Iterable[DeadLetter], samples: int) -> dict[str, ReasonSummary]:
    """Count per reason (most frequent first) with the first ``samples`` of each."""
    found: dict[str, ReasonSummary] = {}
    for letter in letters:
        add(found, letter, samples)
    return by_count(found)


def read_dead_letters(
    settings: Settings, apply: Callable[[DeadLetter], None], timeout: float = 30.0
) -> str:
    """Hand every dead letter, up to the topic's current end, to ``apply``; the topic's name."""
    from confluent_kafka import OFFSET_BEGINNING
    from confluent_kafka.admin import AdminClient

    from streams.kafka import client_config
    from streams.worker.changelog import read_partitions

    topic = Topics.of(settings).dead_letter
    metadata = AdminClient(client_config(settings)).list_topics(topic, timeout=timeout)
    found = metadata.topics.get(topic)
    if found is None or found.error is not None or not found.partitions:
        raise BrokerError(
            f"dead-letter topic {topic} does not exist (check ENGAGEMENT_TOPIC_PREFIX; "
            "a worker creates it when it starts)"
        )

    def read(message: Any) -> None:
        headers = [(n, v) for n, v in message.headers() or []]
        apply(
            DeadLetter(
                message.partition(), message.offset(), message.key(), message.value(), headers
            )
        )

    starts = dict.fromkeys(sorted(found.partitions), OFFSET_BEGINNING)
    read_partitions(settings, topic, starts, read, timeout=timeout)
    return topic


# -- replay ------------------------------------------------------------------------------------
@dataclass(slots=True)
class ReplaySummary:
    chosen: int = 0
    sent: int = 0
    delivered: int = 0
    skipped_reduced: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return self.sent - self.delivered


class Replayer:
    """Re-publishes dead letters of the chosen reasons to ``topic``, byte for byte."""

    def __init__(self, producer: Any, topic: str, reasons: Sequence[str]) -> None:
        self.producer = producer
        self.topic = topic
        self.reasons = set(reasons)
        self.summary = ReplaySummary()

    def __call__(self, letter: DeadLetter) -> None:
        if letter.reason not in self.reasons:
            return
        self.summary.chosen += 1
        if letter.reduced:
            self.summary.skipped_reduced += 1
            return
        while True:
            try:
                self.producer.produce(
                    self.topic,
                    key=letter.key,
                    value=letter.value,
                    headers=letter.original_headers or None,
                    on_delivery=self._delivered,
                )
                break
            except BufferError:  # the local queue is full: let deliveries drain
                self.producer.poll(0.1)
        self.summary.sent += 1
        self.producer.poll(0)

    def _delivered(self, error: Any, _message: Any) -> None:
        if error is None:
            self.summary.delivered += 1
        elif len(self.summary.errors) < 5:
            self.summary.errors.append(str(error))

    def finish(self, timeout: float = 30.0) -> ReplaySummary:
        self.producer.flush(timeout)
        return self.summary


def _kafka_producer(settings: Settings) -> Any:
    from confluent_kafka import Producer

    from streams.kafka import producer_config

    return Producer(producer_config(settings))


# -- output ------------------------------------------------------------------------------------
def _text(raw: bytes | None) -> str:
    if raw is None:
        return "(null)"
    text = raw[:SAMPLE_CHARS].decode(errors="replace")
    text = text.encode("unicode_escape").decode()
    return text + ("..." if len(raw) > SAMPLE_CHARS else "")


def render_summary(topic: str, found: dict[str, ReasonSummary], out: TextIO) -> None:
    total = sum(entry.count for entry in found.values())
    print(f"{topic}: {total} dead letter(s)", file=out)
    if not found:
        return
    width = max(len("reason"), *(len(reason) for reason in found))
    print(f"  {'reason':<{width}}  {'count':>8}  {'reduced':>8}", file=out)
    for reason, entry in found.items():
        print(f"  {reason:<{width}}  {entry.count:>8}  {entry.reduced:>8}", file=out)
    for reason, entry in found.items():
        print(f"\n{reason}: first {len(entry.samples)} of {entry.count}", file=out)
        for letter in entry.samples:
            error = letter.error
            source, part = error.get("topic", "?"), error.get("partition", "?")
            where = f"{source}[{part}]@{error.get('offset', '?')}"
            print(
                f"  {topic}[{letter.partition}]@{letter.offset} from {where}: "
                f"{error.get('message', '')}",
                file=out,
            )
            print(f"    key {_text(letter.key)}  value {_text(letter.value)}", file=out)


def dead_letters_command(
    settings: Settings,
    *,
    reasons: Sequence[str] | None,
    replay: bool,
    samples: int = 3,
    as_json: bool = False,
    to_topic: str | None = None,
    out: TextIO = sys.stdout,
    producer_factory: ProducerFactory = _kafka_producer,
) -> int:
    """List (or with ``replay`` re-publish) the dead letters; the exit status."""
    if replay and not reasons:
        raise UsageError("--replay needs --reason (one or more): say which dead letters to replay")
    if replay:
        return _replay(
            settings, reasons or (), to_topic or settings.input_topic, out, producer_factory
        )
    chosen = set(reasons) if reasons else None
    found: dict[str, ReasonSummary] = {}

    def take(letter: DeadLetter) -> None:
        if chosen is not None and letter.reason not in chosen:
            return
        if as_json:
            out.write(orjson.dumps(letter.to_json()).decode() + "\n")
        add(found, letter, samples)

    topic = read_dead_letters(settings, take)
    render_summary(topic, by_count(found), sys.stderr if as_json else out)
    return 0


def _replay(
    settings: Settings, reasons: Sequence[str], to_topic: str, out: TextIO, factory: ProducerFactory
) -> int:
    replayer = Replayer(factory(settings), to_topic, reasons)
    topic = read_dead_letters(settings, replayer)
    summary = replayer.finish()
    print(
        f"replayed {summary.delivered} of {summary.chosen} dead letter(s) with reason "
        f"{', '.join(reasons)} from {topic} to {to_topic} ({summary.skipped_reduced} reduced, "
        f"not replayed; {summary.failed} not delivered)",
        file=out,
    )
    for error in summary.errors:
        print(f"  delivery error: {error}", file=out)
    return 0 if summary.failed == 0 else 1


# -- command line ------------------------------------------------------------------------------
DESCRIPTION = """\
List the dead letters (input the worker rejected) by reason, with counts and a few samples,
or re-publish the ones of chosen reasons to the input topic once the cause is fixed.

Replay sends each dead letter's original key, value and headers unchanged (the error headers
are left off). Dead letters whose value was cut to fit Kafka (reduced) are never replayed.
Replaying twice publishes twice; the worker drops events whose event_id it saw recently."""


def _run(args: argparse.Namespace) -> int:
    from streams.kafka import check_brokers

    settings = Settings.from_env_or_exit()
    if args.replay and not args.reason:
        raise UsageError("--replay needs --reason (one or more): say which dead letters to replay")
    check_brokers(settings)
    return dead_letters_command(
        settings,
        reasons=args.reason,
        replay=args.replay,
        samples=args.samples,
        as_json=args.json,
        to_topic=args.to,
    )


def add_dead_letters_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``engagement dead-letters``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "dead-letters",
        help="list dead letters by reason, or replay chosen ones into the input topic",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--reason",
        action="extend",
        nargs="+",
        choices=REASONS,
        metavar="REASON",
        help=f"only these reasons: {', '.join(REASONS)}",
    )
    parser.add_argument(
        "--replay", action="store_true", help="re-publish the dead letters of --reason"
    )
    parser.add_argument("--to", metavar="TOPIC", help="replay target (ENGAGEMENT_INPUT_TOPIC)")
    parser.add_argument("--samples", type=int, default=3, help="samples shown per reason (3)")
    parser.add_argument(
        "--json", action="store_true", help="every dead letter as a JSON line (summary: stderr)"
    )
    parser.set_defaults(func=_run)
    return parser
