"""The per-user state and its compact, versioned binary encoding.

Everything a user's engagement depends on is kept as *sets* (active days, active days per event
category) plus extremes (first and last event time), so folding the same events in any order, or
twice, gives the same state. Bitmaps are anchored at the newest active day: bit ``i`` means
"active on ``last_day - i``"; days that age out of the horizon are still counted in
``x_extra`` so the churn model's ``x`` covers the whole lifetime.

Wire format v1 (all integers little-endian)::

    u8  version = 1
    u8  stage | (deadline kind << 4)
    u8  channel index
    u8  number of category bitmaps (C)
    i64 first event ms          i64 last event ms
    i64 next deadline ms (0 = none)
    i64 stage entered ms
    i32 newest active day       u16 active days aged out of the horizon (x_extra)
    u8  n, then n bytes: activity bitmap
    C x (u8 n, n bytes): category bitmaps
    u8  k, then k x (u32 fingerprint, u32 ms before last event): recent event ids

Wire format v2 is v1 (with version byte 2) followed by the deferred events (see
:mod:`agents.logic.walk`): events read while a deadline before them was still ahead of the
clock, kept out of the state's facts until the clock passes that deadline::

    u16 p, then p x (i64 event ms, u32 fingerprint, u8 category (255 = none), u8 channel)

Wire format v3 is v2 (with version byte 3; the deferred-event count is always written)
followed by the user's last signal of each kind, for the return rates by holdout arm
(:mod:`agents.logic.returns`)::

    u8  m, then m x (u8 kind index | arm << 4, u8 channel index, i64 signal ms,
                     i64 first return ms (0 = not returned yet))

Wire format v4 is v3 (with version byte 4; the mark count is always written) followed by the
user's progress in the activation funnels (:mod:`agents.logic.funnels`)::

    u8  f, then f x (u32 funnel key, u8 flags (bit 0: stalled signalled),
                     u8 h, then h x (u8 step, i64 hit ms))

A state is written in the oldest version that holds it (v1 without deferred events, signal
marks and funnel progress), so a worker of the previous release still reads what it can; this
worker reads all four.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Final

from schemas.errors import StateDecodeError

VERSION: Final = 4  # the newest version this module reads; it writes the oldest that holds a state
_HEAD: Final = struct.Struct("<BBBBqqqqiH")
_MARK: Final = struct.Struct("<BBqq")
_PAIR: Final = struct.Struct("<II")
_PENDING: Final = struct.Struct("<qIBB")
_COUNT: Final = struct.Struct("<H")
_TRACK: Final = struct.Struct("<IBB")
_HIT: Final = struct.Struct("<Bq")
_NO_CATEGORY: Final = 255
_DEADLINE_MS: Final = struct.Struct("<q")
_DEADLINE_AT: Final = 20  # the header's "next deadline ms": after 4 bytes and two i64
# bound once: compiled, a call through these skips the method lookup each call costs
_HEAD_PACK: Final = _HEAD.pack
_HEAD_UNPACK: Final = _HEAD.unpack_from
# the recent pairs of a state in one call: the pack of n pairs at index n (a count is one byte)
_PAIRS_PACK: Final = tuple(struct.Struct(f"<{2 * n}I").pack for n in range(256))
_PAIR_ITER: Final = _PAIR.iter_unpack
_COUNT_PACK: Final = _COUNT.pack
_COUNT_UNPACK: Final = _COUNT.unpack_from
_PENDING_PACK: Final = _PENDING.pack
_PENDING_ITER: Final = _PENDING.iter_unpack
_MARK_PACK: Final = _MARK.pack
_MARK_ITER: Final = _MARK.iter_unpack
_DEADLINE_UNPACK: Final = _DEADLINE_MS.unpack_from
_FROM_BYTES: Final = int.from_bytes
_BIT_COUNT: Final = int.bit_count

# A deferred event: (event ms, fingerprint, category index or -1, channel index)
Pending = tuple[int, int, int, int]
# The user's last signal of a kind: (kind index in SIGNAL_KINDS, arm (0 treatment, 1 holdout,
# 2 not delivered), channel index at the signal, signal ms, first return ms or 0)
Mark = tuple[int, int, int, int, int]


@dataclass(slots=True)
class Track:
    """One user's progress in one funnel: the hits that can still matter, as ``(ms, step)``
    sorted (see :mod:`agents.logic.funnels`), and whether the stall was signalled."""

    key: int  # agents.logic.funnels.Funnel.key
    hits: list[tuple[int, int]] = field(default_factory=list)
    stalled: bool = False

    def copy(self) -> Track:
        return Track(self.key, list(self.hits), self.stalled)


class Stage(IntEnum):
    """A user's lifecycle stage (drives signals)."""

    NEW = 0
    ACTIVE = 1
    AT_RISK = 2
    DORMANT = 3
    CHURNED = 4
    REACTIVATED = 5

    @property
    def label(self) -> str:
        return self.name.lower()


class Deadline(IntEnum):
    """What happens when a user's next deadline passes."""

    NONE = 0
    AT_RISK = 1
    DORMANT = 2
    CHURNED = 3
    DISCARD = 4


_DEADLINE_KINDS: Final = len(Deadline)

# By value (0, 1, ...), for decode: calling an enum class (``Stage(n)``) is a Python call
# through EnumType.__call__, twice a state; an index is not (IndexError on a bad value).
STAGES: Final = tuple(Stage)
# Stage.label by value, without the enum's ``name`` lookup (twice per signal)
STAGE_LABELS: Final = tuple(stage.label for stage in STAGES)
DEADLINES: Final = tuple(Deadline)


@dataclass(slots=True, init=False)
class UserState:
    """One user's engagement facts. Mutable: the fold updates it in place.

    ``__init__`` is written out (``init=False``): the one dataclasses generates is interpreted
    Python even in the compiled core, and a state is built on every decode and copy (~7 % of
    the engine's time went to it)."""

    first_ms: int
    last_ms: int
    last_day: int
    channel: int = 0
    days: int = 1
    x_extra: int = 0
    categories: list[int] = field(default_factory=list)
    recent: list[tuple[int, int]] = field(default_factory=list)  # (ms, fingerprint), newest first
    stage: Stage = Stage.NEW
    stage_since_ms: int = 0
    deadline_ms: int = 0
    deadline: Deadline = Deadline.NONE
    pending: list[Pending] = field(default_factory=list)  # deferred events, oldest first
    marks: list[Mark] = field(default_factory=list)  # last signal per kind, by kind index
    funnels: list[Track] = field(default_factory=list)  # funnel progress, by funnel key

    def __init__(  # noqa: PLR0917 (the fields in order, as the generated __init__ took them)
        self,
        first_ms: int,
        last_ms: int,
        last_day: int,
        channel: int = 0,
        days: int = 1,
        x_extra: int = 0,
        categories: list[int] | None = None,
        recent: list[tuple[int, int]] | None = None,
        stage: Stage = Stage.NEW,
        stage_since_ms: int = 0,
        deadline_ms: int = 0,
        deadline: Deadline = Deadline.NONE,
        pending: list[Pending] | None = None,
        marks: list[Mark] | None = None,
        funnels: list[Track] | None = None,
    ) -> None:
        self.first_ms = first_ms
        self.last_ms = last_ms
        self.last_day = last_day
        self.channel = channel
        self.days = days
        self.x_extra = x_extra
        self.categories = [] if categories is None else categories
        self.recent = [] if recent is None else recent
        self.stage = stage
        self.stage_since_ms = stage_since_ms
        self.deadline_ms = deadline_ms
        self.deadline = deadline
        self.pending = [] if pending is None else pending
        self.marks = [] if marks is None else marks
        self.funnels = [] if funnels is None else funnels

    def active_days(self) -> int:
        """Distinct active days over the user's whole life."""
        return _BIT_COUNT(self.days) + self.x_extra

    def copy(self) -> UserState:
        return UserState(
            self.first_ms,
            self.last_ms,
            self.last_day,
            self.channel,
            self.days,
            self.x_extra,
            list(self.categories),
            list(self.recent),
            self.stage,
            self.stage_since_ms,
            self.deadline_ms,
            self.deadline,
            list(self.pending),
            list(self.marks),
            [t.copy() for t in self.funnels],
        )


_BYTES: Final = tuple(bytes((n,)) for n in range(256))  # a count or length as its one byte


def _add_bitmap(parts: list[bytes], value: int) -> None:
    length = (value.bit_length() + 7) // 8
    if length > 255:
        raise ValueError("bitmap longer than 2040 days")
    parts.append(_BYTES[length])
    parts.append(value.to_bytes(length, "little"))  # a mypyc primitive


def encode(state: UserState) -> bytes:
    """The bytes of ``state`` in the oldest version that holds it (module docstring).

    Written as plain loops over the parts (no generators, no concatenation): encode and
    :func:`decode` run once per fold and are a quarter of the engine's time."""
    version = 4 if state.funnels else 3 if state.marks else 2 if state.pending else 1
    parts = [
        _HEAD_PACK(
            version,
            state.stage | (state.deadline << 4),
            state.channel,
            len(state.categories),
            state.first_ms,
            state.last_ms,
            state.deadline_ms,
            state.stage_since_ms,
            state.last_day,
            min(state.x_extra, 0xFFFF),
        )
    ]
    _add_bitmap(parts, state.days)
    for bitmap in state.categories:
        _add_bitmap(parts, bitmap)
    recent, last = state.recent, state.last_ms
    parts.append(_BYTES[len(recent)])
    if recent:
        flat: list[int] = []
        for ms, fp in recent:
            flat.append(fp)
            flat.append(min(last - ms, 0xFFFFFFFF))
        parts.append(_PAIRS_PACK[len(recent)](*flat))
    if version >= 2:
        parts.append(_COUNT_PACK(len(state.pending)))
        for ms, fp, cat, channel in state.pending:
            parts.append(_PENDING_PACK(ms, fp, _NO_CATEGORY if cat < 0 else cat, channel))
    if version >= 3:
        parts.append(_BYTES[len(state.marks)])
        for kind, arm, channel, at, back in state.marks:
            parts.append(_MARK_PACK(kind | arm << 4, channel, at, back))
    if version == 4:
        parts.append(_BYTES[len(state.funnels)])
        for track in state.funnels:
            parts.append(_TRACK.pack(track.key, int(track.stalled), len(track.hits)))
            for ms, step in track.hits:
                parts.append(_HIT.pack(step, ms))
    return b"".join(parts)


def decode(data: bytes) -> UserState:
    """Inverse of :func:`encode` (reads v1 to v4); raises :class:`StateDecodeError` on foreign
    bytes."""
    if not data or not 1 <= data[0] <= VERSION:
        raise _version_error(data)
    try:
        (
            version,
            stage_kind,
            channel,
            n_categories,
            first_ms,
            last_ms,
            deadline_ms,
            since_ms,
            last_day,
            x_extra,
        ) = _HEAD_UNPACK(data)
        pos = _HEAD.size
        length = data[pos]
        days = _bitmap(data, pos + 1, length)
        pos += 1 + length
        categories = []
        for _ in range(n_categories):
            length = data[pos]
            categories.append(_bitmap(data, pos + 1, length))
            pos += 1 + length
        end = pos + 1 + _PAIR.size * data[pos]
        recent = [(last_ms - delta, fp) for fp, delta in _PAIR_ITER(_slice(data, pos + 1, end))]
        pos = end
        pending: list[Pending] = []
        marks: list[Mark] = []
        tracks: list[Track] = []
        if version >= 2:
            pending = _decode_pending(data, pos)
        if version >= 3:
            pos += _COUNT.size + _PENDING.size * len(pending)
            marks = _decode_marks(data, pos)
            if version == 4:
                tracks = _decode_tracks(data, pos + 1 + _MARK.size * len(marks))
        return UserState(
            first_ms,
            last_ms,
            last_day,
            channel,
            days,
            x_extra,
            categories,
            recent,
            STAGES[stage_kind & 0x0F],
            since_ms,
            deadline_ms,
            DEADLINES[stage_kind >> 4],
            pending,
            marks,
            tracks,
        )
    except (struct.error, IndexError, ValueError) as exc:
        raise StateDecodeError(f"corrupt state: {exc}") from exc


def _bitmap(data: bytes, start: int, length: int) -> int:
    return _FROM_BYTES(_slice(data, start, start + length), "little")


def _slice(data: bytes, start: int, end: int) -> bytes:
    """``data[start:end]``, or IndexError if the data ends before ``end`` (a truncated state)."""
    if end > len(data):
        raise IndexError(f"state of {len(data)} bytes read to byte {end}")
    return data[start:end]


def _decode_pending(data: bytes, pos: int) -> list[Pending]:
    (count,) = _COUNT_UNPACK(data, pos)
    start = pos + _COUNT.size
    return [
        (ms, fp, -1 if cat == _NO_CATEGORY else cat, channel)
        for ms, fp, cat, channel in _PENDING_ITER(
            _slice(data, start, start + _PENDING.size * count)
        )
    ]


def _decode_marks(data: bytes, pos: int) -> list[Mark]:
    end = pos + 1 + _MARK.size * data[pos]
    return [
        (kind_arm & 0x0F, kind_arm >> 4, channel, at, back)
        for kind_arm, channel, at, back in _MARK_ITER(_slice(data, pos + 1, end))
    ]


def _decode_tracks(data: bytes, pos: int) -> list[Track]:
    tracks: list[Track] = []
    count, pos = data[pos], pos + 1
    for _ in range(count):
        key, flags, n = _TRACK.unpack_from(data, pos)
        pos += _TRACK.size
        end = pos + _HIT.size * n
        hits = [(ms, step) for step, ms in _HIT.iter_unpack(_slice(data, pos, end))]
        pos = end
        tracks.append(Track(key, hits, bool(flags & 1)))
    return tracks


def header_deadline_ms(data: bytes) -> int | None:
    """The next deadline of the encoded state ``data``, read from its header without decoding
    it, where the header says it all: a state without funnel progress (v1 to v3) whose
    deadline is set. None otherwise (no deadline, funnel windows that are deadlines too, or
    bytes for :func:`decode` to judge). The deadline index pops entries made before a user's
    deadline moved later; this tells most of them apart for the price of one read."""
    if len(data) < _HEAD.size or not 1 <= data[0] <= 3:
        return None
    if not 0 < data[1] >> 4 < _DEADLINE_KINDS:  # Deadline.NONE, or not a kind
        return None
    deadline_ms: int = _DEADLINE_UNPACK(data, _DEADLINE_AT)[0]
    return deadline_ms


def _version_error(data: bytes) -> StateDecodeError:
    if not data:
        return StateDecodeError("empty state value")
    found = data[0]
    if found > VERSION:
        return StateDecodeError(
            f"state version {found} is newer than this worker reads (version {VERSION}): it "
            f"was written by a newer engagement-stream; run a release that reads state "
            f"version {found}",
            version=found,
        )
    return StateDecodeError(f"unknown state version {found} (this worker reads {VERSION})")
