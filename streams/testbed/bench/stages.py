"""Where the steady-load latency goes: produce -> Kafka's append -> ingest step -> by_user fetch
and fold -> group delivery -> signal consumed, from timestamps that already flow.

For each returning user the latency phase knows six instants on the one clock of this machine:

* ``sent``: the bench produced the event (the producer's wall clock);
* ``acked``: the bench's producer had Kafka's acknowledgement of the input record (its delivery
  report, served at every tick of the paced producer: within about 5 ms), and no later than
  ``ingested`` (a record cannot be read before Kafka appended it). This first stage is the
  event's producer and the broker, before engagement-stream can see the event: on the bench
  machine's ext4 disk the first append to each partition after a quiet spell can wait ~40 ms
  in a page fault on the broker's memory-mapped index, one partition after the other;
* ``ingested``: the Kafka timestamp of the ``events.by_user`` record that carries it (set when
  ingest produced the record at the end of its step);
* ``folded``: ``processed_at_ms`` of the signal (the fold read the wall clock);
* ``signalled``: the Kafka timestamp of the signal record (produced when its group was made
  durable: after the previous group, and after the flusher or the group size started it);
* ``seen``: the bench consumed the signal.

:func:`split_stages` (pure) turns them into per-stage p50 / p99 / mean and each stage's share
of the mean total (means add up, percentiles do not), and :func:`first_second_split` the
same for the phase's first second and the rest. :class:`ByUserStamps` reads the by_user
topic for the ``ingested`` instants.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from confluent_kafka import Consumer

from streams.testbed.bench.report import summarize
from streams.worker.codecs import decode_record

STAGES = ("kafka_append", "ingest", "by_user_fetch_and_fold", "group_delivery", "signal_fetch")


class Stamps(NamedTuple):
    """One event's way to its signal, in unix milliseconds."""

    sent: float
    acked: float
    ingested: float
    folded: float
    signalled: float
    seen: float


def split_stages(samples: Sequence[Stamps]) -> dict[str, Any]:
    """Per stage: p50 / p99 / max / samples, the mean and its share of the mean total."""
    durations: dict[str, list[float]] = {name: [] for name in STAGES}
    for s in samples:
        points = (s.sent, s.acked, s.ingested, s.folded, s.signalled, s.seen)
        for name, start, end in zip(STAGES, points, points[1:], strict=False):
            durations[name].append(end - start)
    means = {name: sum(v) / len(v) if v else 0.0 for name, v in durations.items()}
    total = sum(means.values())
    out: dict[str, Any] = {}
    for name, values in durations.items():
        figures: dict[str, Any] = summarize(values)
        figures["mean"] = round(means[name], 3)
        figures["share"] = round(means[name] / total, 3) if total > 0 else None
        out[name] = figures
    return out


def first_second_split(samples: Sequence[Stamps]) -> dict[str, Any]:
    """:func:`split_stages` of the returns produced in the phase's first second and of the
    rest: which stage the first second's slow ones wait in."""
    if not samples:
        return {}
    first = min(s.sent for s in samples)
    early = [s for s in samples if s.sent - first < 1000]
    later = [s for s in samples if s.sent - first >= 1000]
    return {"first_second": split_stages(early), "after": split_stages(later)}


def join_stamps(
    sent_s: Mapping[str, float],
    acked_s: Mapping[str, float],
    ingested_ms: Mapping[str, float],
    signals: Mapping[str, tuple[float, float, float]],
) -> list[Stamps]:
    """The users known at every point: ``sent_s`` and ``acked_s`` (unix seconds),
    ``ingested_ms``, and ``signals``: user -> (seen in unix seconds, processed_at_ms, signal
    record timestamp). The acknowledgement is taken no later than the by_user record."""
    out = []
    for user, (seen_s, folded_ms, signalled_ms) in signals.items():
        if user in sent_s and user in acked_s and user in ingested_ms:
            ingested = ingested_ms[user]
            acked = min(acked_s[user] * 1000, ingested)
            out.append(
                Stamps(sent_s[user] * 1000, acked, ingested, folded_ms, signalled_ms, seen_s * 1000)
            )
    return out


def read_ready(client: Consumer, timeout: float, most: int = 2000) -> list[Any]:
    """The records there now, waiting at most ``timeout`` for the first one. Not
    ``consume(most, timeout)`` alone: that waits out the whole timeout unless ``most`` records
    come, and a record read late is stamped late (it made the last signals look 200 ms slow)."""
    first = client.poll(timeout)
    if first is None:
        return []
    return [first, *client.consume(most - 1, timeout=0)]


class ByUserStamps:
    """The Kafka timestamp of the ``events.by_user`` record carrying each user's event with an
    event time from ``since_ms`` on (the users' earlier events are left out)."""

    def __init__(self, bootstrap: str, topic: str, group: str, prefix: str) -> None:
        from streams.testbed.bench.data import consumer

        self.client: Consumer = consumer(bootstrap, group, [topic])
        self.prefix = prefix
        self.since_ms = 0
        self.stamp_ms: dict[str, float] = {}

    def drain(self, users: Iterable[str], timeout: float = 15.0) -> None:
        """Read until each of ``users`` is stamped, for at most ``timeout`` seconds (ingest
        writes clock-only records to every partition four times a second: the topic never goes
        quiet)."""
        missing = set(users) - self.stamp_ms.keys()
        deadline = time.monotonic() + timeout
        while missing and time.monotonic() < deadline:
            self.poll(0.2)
            missing -= self.stamp_ms.keys()

    def poll(self, timeout: float = 0.0) -> int:
        """Read what is there (waiting at most ``timeout``); the number of records read."""
        messages = read_ready(self.client, timeout)
        for msg in messages:
            if msg.error() is not None:
                continue
            _, stamp = msg.timestamp()
            _, _, rows, _ = decode_record(msg.value())
            for row in rows:
                if row.timestamp_ms >= self.since_ms and row.user_id.startswith(self.prefix):
                    self.stamp_ms.setdefault(row.user_id, stamp)
        return len(messages)

    def close(self) -> None:
        self.client.close()
