"""Abusive input: what must be dead-lettered, and odd but valid input the oracle must count."""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

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
