"""Typed records for the contracts in this folder: the canonical event, the activity row of
``events.by_user``, the signal kinds, the channel labels and Kafka headers.

Plain dataclasses with ``slots``: cheap to build on the hot path, and each converts to and from
exactly the documented JSON (no framework metadata on the wire).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple

import orjson

from schemas.timestamps import iso_ms

# The signal kinds, in the order of the signal schema's ``kind`` enum (one topic each).
SIGNAL_KINDS = ("dormant", "churn_risk", "churned", "reactivated", "stalled")
# Where an acquisition channel outside the allowlist (or none) is counted: label index 0.
OTHER_CHANNEL = "other"

SIGNAL_SCHEMA_VERSION = 1  # ``schema_version`` of ``signal.schema.json``

Header = tuple[str, bytes | None]
Headers = Sequence[Header]  # Kafka record headers as the clients hand them over


def channel_labels(allowlist: Sequence[str]) -> tuple[str, ...]:
    """The channel labels by index: ``other`` first, then the allowlist in its order."""
    return (OTHER_CHANNEL, *allowlist)


@dataclass(slots=True)
class Event:
    """The canonical event every accepted input shape is normalised to.

    Not ``frozen``: a frozen dataclass's ``__init__`` goes through ``object.__setattr__`` per
    field (1.8 µs against 0.25 µs here), and one is built per input event. Treat it as
    immutable.

    ``timestamp_ms`` is event time in epoch milliseconds (UTC). ``shape`` records which input
    shape it came from (``canonical``, ``cloudevents``, ``segment``) and is not part of the
    dedup identity.
    """

    event_id: str
    user_id: str
    event_type: str
    timestamp_ms: int
    channel: str | None = None
    platform: str | None = None
    session_id: str | None = None
    properties: dict[str, Any] | None = None
    schema_version: int = 1
    shape: str = "canonical"

    def to_wire(self) -> dict[str, Any]:
        """The canonical JSON object (what ``user_event.schema.json`` describes)."""
        wire: dict[str, Any] = {
            "schema_version": self.schema_version,
            "event_id": self.event_id,
            "user_id": self.user_id,
            "event_type": self.event_type,
            "timestamp": self.timestamp_ms,
        }
        for name in ("channel", "platform", "session_id", "properties"):
            value = getattr(self, name)
            if value is not None:
                wire[name] = value
        return wire

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_wire())

    @classmethod
    def from_wire(cls, wire: dict[str, Any]) -> Event:
        """Inverse of :meth:`to_wire` for already validated canonical objects (internal topics);
        ``timestamp`` must be epoch milliseconds there."""
        return cls(
            wire["event_id"],
            wire["user_id"],
            wire["event_type"],
            wire["timestamp"],
            wire.get("channel"),
            wire.get("platform"),
            wire.get("session_id"),
            wire.get("properties"),
            wire.get("schema_version", 1),
        )


class Activity(NamedTuple):
    """The part of an event the activity and lifecycle stages use, as the internal
    ``events.by_user`` topic carries it (a row, cheap to decode). Properties, platform and
    session id stay in the input topic; ``matches`` are the ids of the funnel steps with a
    property match that the event matched (``agents.logic.funnels.step_id``), found by the
    ingest stage, which sees the properties (mostly none)."""

    user_id: str
    timestamp_ms: int
    event_id: str
    event_type: str
    channel: str | None
    matches: tuple[int, ...] = ()

    @classmethod
    def of(cls, event: Event) -> Activity:
        return cls(
            event.user_id, event.timestamp_ms, event.event_id, event.event_type, event.channel
        )


EventLike = Event | Activity


_SIGNAL_FIELDS = (
    "signal_id",
    "kind",
    "user_id",
    "stage_before",
    "stage_after",
    "event_time_ms",
    "processed_at_ms",
    "clock",
    "trigger",
    "channel",
    "reasons",
)


ARMS = ("treatment", "holdout")  # a signal's holdout arm (agents.logic.holdout)


@dataclass(frozen=True, slots=True)
class Signal:
    """Typed view of one signal (``schemas/signal.schema.json``).

    ``arm``: ``treatment`` or ``holdout``. **Do not act on a holdout signal**: its users are the
    control group that measures the win-back (a signal written before arms existed reads as
    treatment).
    """

    signal_id: str
    kind: str
    user_id: str
    stage_before: str
    stage_after: str
    event_time_ms: int
    processed_at_ms: int
    clock: str
    trigger: str
    channel: str
    reasons: dict[str, Any]
    arm: str = "treatment"

    @classmethod
    def from_dict(cls, obj: Any) -> Signal:
        """From the parsed JSON object; ValueError if a field is missing or mistyped."""
        if not isinstance(obj, dict):
            raise ValueError("a signal must be a JSON object")
        missing = [name for name in _SIGNAL_FIELDS if name not in obj]
        if missing:
            raise ValueError(f"signal without {', '.join(missing)}")
        if not isinstance(obj["reasons"], dict):
            raise ValueError("signal reasons must be an object")
        for name in ("event_time_ms", "processed_at_ms"):
            if not isinstance(obj[name], int) or isinstance(obj[name], bool):
                raise ValueError(f"signal {name} must be an integer")
        arm = obj.get("arm", "treatment")
        if arm not in ARMS:
            raise ValueError(f"signal arm must be one of {', '.join(ARMS)}")
        return cls(
            **{name: obj[name] for name in _SIGNAL_FIELDS if name != "reasons"},
            reasons=dict(obj["reasons"]),
            arm=arm,
        )

    @property
    def actionable(self) -> bool:
        """False for a holdout signal: leave the user alone."""
        return self.arm != "holdout"

    @classmethod
    def from_json(cls, data: bytes | str) -> Signal:
        """Parse a signal record's value; ValueError if it is not a signal."""
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"signal is not JSON: {exc}") from None
        return cls.from_dict(obj)

    def to_dict(self) -> dict[str, Any]:
        """The full JSON object of the signal schema (ISO stamps derived from the ms)."""
        return signal_dict(
            signal_id=self.signal_id,
            kind=self.kind,
            user_id=self.user_id,
            stage_before=self.stage_before,
            stage_after=self.stage_after,
            event_time_ms=self.event_time_ms,
            processed_at_ms=self.processed_at_ms,
            clock=self.clock,
            trigger=self.trigger,
            channel=self.channel,
            reasons=self.reasons,
            arm=self.arm,
        )

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())


# The engine stamps every signal of a batch with the same processing time: its text is made once
# (iso_ms costs about 1 µs, a cache hit under a tenth of that).
_processed_text = lru_cache(maxsize=16)(iso_ms)


def signal_dict(
    *,
    signal_id: str,
    kind: str,
    user_id: str,
    stage_before: str,
    stage_after: str,
    event_time_ms: int,
    processed_at_ms: int,
    clock: str,
    trigger: str,
    channel: str,
    reasons: dict[str, Any],
    arm: str,
) -> dict[str, Any]:
    """The JSON object of a signal (:meth:`Signal.to_dict`), built without a frozen
    :class:`Signal` in between: the engine makes one per signal, and building a frozen
    dataclass of twelve fields costs twelve ``object.__setattr__`` calls."""
    return {
        "schema_version": SIGNAL_SCHEMA_VERSION,
        "signal_id": signal_id,
        "kind": kind,
        "user_id": user_id,
        "stage_before": stage_before,
        "stage_after": stage_after,
        "event_time": iso_ms(event_time_ms),
        "event_time_ms": event_time_ms,
        "processed_at": _processed_text(processed_at_ms),
        "processed_at_ms": processed_at_ms,
        "clock": clock,
        "trigger": trigger,
        "channel": channel,
        "arm": arm,
        "reasons": reasons,
    }
