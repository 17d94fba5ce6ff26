"""Abusive input: what must be dead-lettered, and odd but valid input the oracle must count."""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

from agents.logic.partitioning import partition_for
from tests.faults import Message
from tests.oracle import DAY_MS, RawEvent

HOUR = 3_600_000


@dataclass
class ValidAbuse:
    """Valid messages (huge, flooded duplicates, very late) and the oracle's view of them."""

    messages: list[Message] = field(default_factory=list)
    oracle_events: list[RawEvent] = field(default_factory=list)

    def add(self, user: str, event_id: str, ts: int, copies: int = 1, pad: int = 0) -> None:
        body: dict[str, object] = {
            "event_id": event_id,
            "user_id": user,
            "event_type": "page_view",
            "timestamp": ts,
        }
        if pad:
            body["properties"] = {f"k{i}": "v" * 990 for i in range(pad // 1000)}
        message = Message(user.encode(), orjson.dumps(body), (user, event_id))
        self.messages += [message] * copies
        self.oracle_events.append(RawEvent(user, event_id, ts))


def dead(value: bytes | None, i: int) -> Message:
    return Message(f"abuse-{i}".encode(), value, None)


def abusive_input(now_ms: int, scale: int) -> tuple[list[Message], ValidAbuse]:
    """(messages that must be dead-lettered, valid abusive messages)."""
    n = 50 * scale
    base = {"event_id": "x", "user_id": "abuse", "event_type": "page_view", "timestamp": now_ms}
    bad: list[Message] = []
    for i in range(n):
        bad.append(dead(b'{"event_id": "truncated-' + str(i).encode(), i))
        bad.append(dead(b"\xff\xfe\xfa" + bytes(range(128, 256)) + str(i).encode(), i))
        bad.append(dead(b"[" * 5000 + b"]" * 5000, i))
        bad.append(dead(b'{"a":' * 3000 + b"1" + b"}" * 3000, i))
        bad.append(dead(orjson.dumps({**base, "timestamp": now_ms + 30 * DAY_MS}), i))
        bad.append(dead(orjson.dumps({**base, "user_id": "", "event_id": f"e{i}"}), i))
    for i in range(5 * scale):  # oversized: over ENGAGEMENT_MAX_MESSAGE_BYTES (64 KiB)
        bad.append(dead(orjson.dumps({**base, "properties": {"blob": "x" * 200_000}}), i))
    valid = ValidAbuse()
    valid.add("flood", "flood-1", now_ms - 2 * HOUR, copies=10 * n)
    for i in range(5 * scale):
        valid.add(f"huge-{i}", f"huge-{i}", now_ms - 3 * HOUR, pad=50_000)
    for i in range(n):
        valid.add(f"late-{i}", f"late-{i}", now_ms - 100 * DAY_MS + i * 1000)
    return bad, valid


WIDE = 0x1F600  # emoji: 4 bytes in UTF-8, one character for the schema's maxLength


def oversized(size: int, i: int = 0) -> Message:
    """A JSON message of exactly ``size`` bytes (over ENGAGEMENT_MAX_MESSAGE_BYTES and, near
    1 MB, over what the producer takes): dead-lettered, reduced."""
    head = {"event_id": f"big-{i}", "user_id": "abuse", "event_type": "page_view", "blob": ""}
    pad = size - len(orjson.dumps(head))
    return dead(orjson.dumps({**head, "blob": "x" * pad}), i)


def widest_ids(now_ms: int, count: int, partitions: int, partition: int = 0) -> ValidAbuse:
    """``count`` valid events whose user id, event id, event type and channel are as long as
    the schema allows, in 4-byte characters, from users that all hash to ``partition``: over
    1 MB of by_user rows for one partition."""
    users: list[str] = []
    code = WIDE
    while len(users) < 10:
        user = chr(code) * 200  # user_id maxLength
        if partition_for(user.encode(), partitions) == partition:
            users.append(user)
        code += 1
    valid = ValidAbuse()
    for i in range(count):
        user, event_id = users[i % len(users)], f"{i:05d}" + chr(WIDE) * 195  # maxLength 200
        channel = chr(WIDE + 2) * 100  # maxLength 100: not a configured channel
        body = {
            "event_id": event_id,
            "user_id": user,
            "event_type": chr(WIDE + 1) * 100,  # maxLength 100
            "timestamp": now_ms - 2 * HOUR + i,
            "channel": channel,
        }
        valid.messages.append(Message(user.encode(), orjson.dumps(body), (user, event_id)))
        valid.oracle_events.append(RawEvent(user, event_id, now_ms - 2 * HOUR + i, channel))
    return valid
