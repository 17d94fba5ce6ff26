"""A mixed input stream for ingest tests: every accepted shape and every rejection reason.

Each message carries a marker so the test knows what must come out for it: the expected
(user id, event id) of a valid one, or the expected reason of a malformed one.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson

from agents.logic.ingest import Reason

Headers = list[tuple[str, str | bytes | None]]


@dataclass
class Message:
    key: bytes | None
    value: bytes | None
    headers: Headers = field(default_factory=list)
    user_id: str | None = None
    event_id: str | None = None
    reason: Reason | None = None


# reasons only a Schema Registry can give (tests/integration/test_registry_input.py)
NEEDS_REGISTRY = frozenset({Reason.UNDECODABLE_PAYLOAD})


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


def valid(i: int, rnd: random.Random, now_ms: int) -> Message:
    user = f"user-{rnd.randrange(2000)}"
    ts = now_ms - rnd.randrange(20 * 86_400_000)
    kind = rnd.random()
    if kind < 0.6:
        body: dict[str, object] = {
            "event_id": f"c{i}",
            "user_id": user,
            "event_type": "page_view",
            "timestamp": ts if i % 2 else _iso(ts),
            "channel": "organic",
        }
        return Message(user.encode(), orjson.dumps(body), [], user, f"c{i}")
    if kind < 0.75:
        body = {
            "specversion": "1.0",
            "id": f"s{i}",
            "source": "/shop",
            "type": "purchase",
            "time": _iso(ts),
            "subject": user,
            "data": {"amount": 3},
        }
        return Message(
            user.encode(),
            orjson.dumps(body),
            [("content-type", b"application/cloudevents+json")],
            user,
            f"/shop/s{i}",
        )
    if kind < 0.9:
        headers: Headers = [
            ("ce_specversion", b"1.0"),
            ("ce_id", f"b{i}".encode()),
            ("ce_source", b"/app"),
            ("ce_type", b"share"),
            ("ce_time", _iso(ts).encode()),
            ("ce_userid", user.encode()),
            ("content-type", b"application/json"),
        ]
        return Message(user.encode(), orjson.dumps({"n": i}), headers, user, f"/app/b{i}")
    body = {
        "type": "track",
        "messageId": f"m{i}",
        "userId": user,
        "event": "session_start",
        "timestamp": _iso(ts),
        "context": {"campaign": {"source": "email"}},
    }
    return Message(user.encode(), orjson.dumps(body), [], user, f"m{i}")


def malformed(i: int, reason: Reason, now_ms: int) -> Message:
    base = {
        "event_id": f"bad{i}",
        "user_id": f"user-{i}",
        "event_type": "page_view",
        "timestamp": now_ms,
    }
    value: bytes | None
    if reason is Reason.TOO_LARGE:
        value = orjson.dumps({**base, "properties": {"blob": "x" * 70_000}})
    elif reason is Reason.EMPTY:
        value = None
    elif reason is Reason.NOT_UTF8:
        value = b"\xff\xfe{\x00bad" + str(i).encode()
    elif reason is Reason.INVALID_JSON:
        value = b'{"event_id": "truncated' + str(i).encode()
    elif reason is Reason.UNKNOWN_SHAPE:
        value = orjson.dumps([i, "not an object"])
    elif reason is Reason.SCHEMA_VIOLATION:
        value = orjson.dumps({**base, "event_type": 12345})
    elif reason is Reason.MISSING_USER_ID:
        value = orjson.dumps({**base, "user_id": ""})
    elif reason is Reason.INVALID_TIMESTAMP:
        value = orjson.dumps({**base, "timestamp": "last tuesday"})
    elif reason is Reason.FUTURE_TIMESTAMP:
        value = orjson.dumps({**base, "timestamp": now_ms + 5 * 86_400_000})
    elif reason is Reason.UNKNOWN_SCHEMA_ID:  # wire format, and the worker has no registry
        value = b"\x00" + (40_000 + i).to_bytes(4, "big") + orjson.dumps(base)
    else:
        value = orjson.dumps({**base, "schema_version": 99})
    return Message(f"bad-{i}".encode(), value, [("x-trace", str(i).encode())], reason=reason)


def mixed_stream(total: int, bad_share: float, seed: int, now_ms: int) -> list[Message]:
    rnd = random.Random(seed)
    reasons = [r for r in Reason if r not in NEEDS_REGISTRY]
    n_bad = int(total * bad_share)
    messages = [malformed(i, reasons[i % len(reasons)], now_ms) for i in range(n_bad)]
    messages += [valid(i, rnd, now_ms) for i in range(total - n_bad)]
    rnd.shuffle(messages)
    return messages
