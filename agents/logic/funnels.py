"""Activation funnels: their declaration (``ENGAGEMENT_FUNNELS``) and each user's progress.

A funnel is ordered steps (an event type, optionally with a property match) and a window. By
the definitions (ARCHITECTURE.md, "Funnels"), a user enters at their first event of step 1;
reaches step k at the first event of step k after (strictly later than) reaching step k-1 and
within the window from entry (so one event never counts for two steps); converts on reaching
the last step within the window; stalls at step k when the window ends with step k reached and
step k+1 not.

Progress is kept as a small *set* of hits ``(ms, step)`` per funnel (a :class:`Track` in the
user state), from which the reached times are recomputed, so folding the same events twice or in
any order gives the same progress. What a hit set may forget, because no later event can make
it count again: step-1 hits after the entry (the entry only moves earlier), hits after the
window's end (the end only moves earlier), and hits of step k after the time step k was reached
(that time only moves earlier). Kept are at most :data:`EARLY_HITS` hits per step before the
step was reached (the newest ones): they count if a late event moves the previous step earlier.
The one documented exception to order-insensitivity: more than that many such early hits of a
step, followed by a late event that moves the previous step before all of them.

A step with a property match is hit by an event of its type that *carries the match*: the
ingest stage, which sees the event's properties, evaluates the property steps of its type
(:class:`PropertySteps`) and the ``events.by_user`` row carries the ids of those that matched
(:func:`step_id`; ``streams.worker.codecs``), since the row carries no properties. An event
read with its properties (``ENGAGEMENT_INPUT_KEYED_BY_USER``) is matched in the fold alike.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any
from zlib import crc32

import orjson

from agents.logic.decimals import round_to
from agents.logic.state import Track

EARLY_HITS = 4  # hits kept per step before that step was reached (see the module docstring)
MAX_FUNNELS = 8
MAX_STEPS = 16
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.\-]*$")
_WINDOW = re.compile(r"^\s*(\d+)\s*(h|d)\s*$")
_HOUR_MS = 3_600_000
# The activation funnel of the simulator's onboarding (``engagement simulate --onboarding``);
# ENGAGEMENT_FUNNELS is empty by default: a funnel is declared for a deployment's own events.
ACTIVATION_FUNNEL = (
    '[{"name": "activation", "steps": ["signup", "profile_completed", "first_value"], '
    '"window": "7d"}]'
)
Scalar = str | int | float | bool


@dataclass(frozen=True, slots=True)
class Step:
    """An event type, and the properties the event must have (all of them, equal)."""

    event_type: str
    match: tuple[tuple[str, Scalar], ...] = ()

    def matches(self, event_type: str, properties: Mapping[str, Any] | None) -> bool:
        """The type is the step's, and each matched property is there with an equal JSON value
        (``true`` is not ``1``; ``1`` is ``1.0``)."""
        if event_type != self.event_type:
            return False
        if not self.match:
            return True
        props = properties or {}
        return all(key in props and _same(props[key], value) for key, value in self.match)

    @property
    def label(self) -> str:
        """The event type, with the property match if any (``purchase[plan=pro]``)."""
        if not self.match:
            return self.event_type
        return f"{self.event_type}[{','.join(f'{k}={v}' for k, v in self.match)}]"


def _same(found: Any, wanted: Scalar) -> bool:
    return found == wanted and isinstance(found, bool) == isinstance(wanted, bool)


@dataclass(frozen=True, slots=True)
class Funnel:
    name: str
    steps: tuple[Step, ...]
    window_ms: int

    @property
    def key(self) -> int:
        """A stable 32-bit id of the funnel's name (how the user state refers to it)."""
        return crc32(self.name.encode())


def parse_funnels(text: str) -> tuple[Funnel, ...]:
    """The funnels declared in ``text`` (a JSON list); ValueError naming the bad funnel."""
    try:
        items = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not a JSON list of funnels: {exc}") from None
    if not isinstance(items, list):
        raise ValueError("must be a JSON list of funnels")
    if len(items) > MAX_FUNNELS:
        raise ValueError(f"at most {MAX_FUNNELS} funnels are tracked per user")
    funnels = tuple(_funnel(i, item) for i, item in enumerate(items))
    names = [f.name for f in funnels]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"funnel {repeated[0]!r} is declared twice")
    keys = {f.key for f in funnels}
    if len(keys) != len(funnels):
        raise ValueError("two funnel names share a 32-bit id: rename one")
    ids = [step_id(f, k) for f in funnels for k, s in enumerate(f.steps) if s.match]
    if len(set(ids)) != len(ids):
        raise ValueError("two property steps share a 32-bit id: rename a funnel")
    return funnels


def _funnel(index: int, item: Any) -> Funnel:
    if not isinstance(item, dict):
        raise ValueError(f"funnel #{index + 1} is not an object")
    name = item.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"funnel #{index + 1} needs a lower-case name ([a-z0-9_.-])")
    unknown = sorted(set(item) - {"name", "steps", "window"})
    if unknown:
        raise ValueError(f"funnel {name!r}: unknown field(s) {', '.join(unknown)}")
    steps = item.get("steps")
    if not isinstance(steps, list) or not 2 <= len(steps) <= MAX_STEPS:
        raise ValueError(f"funnel {name!r}: steps must be a list of 2 to {MAX_STEPS} steps")
    window = item.get("window")
    match = _WINDOW.match(window) if isinstance(window, str) else None
    if match is None or int(match.group(1)) == 0:
        raise ValueError(f"funnel {name!r}: window must be whole hours or days, e.g. 7d or 48h")
    hours = int(match.group(1)) * (24 if match.group(2) == "d" else 1)
    parsed = tuple(_step(name, i, step) for i, step in enumerate(steps))
    return Funnel(name, parsed, hours * _HOUR_MS)


def _step(funnel: str, index: int, step: Any) -> Step:
    where = f"funnel {funnel!r} step {index + 1}"
    if isinstance(step, str) and step:
        return Step(step)
    if not isinstance(step, dict) or not isinstance(step.get("event_type"), str):
        raise ValueError(f'{where}: an event type, or {{"event_type": ..., "match": {{...}}}}')
    match = step.get("match", {})
    if set(step) - {"event_type", "match"} or not isinstance(match, dict):
        raise ValueError(f"{where}: only event_type and match (an object) are allowed")
    for key, value in match.items():
        if isinstance(value, dict | list) or value is None:
            raise ValueError(f"{where}: property {key!r} must match a string, number or bool")
    return Step(step["event_type"], tuple(sorted(match.items())))


def render_funnels(funnels: tuple[Funnel, ...]) -> str:
    """The JSON text :func:`parse_funnels` reads back as ``funnels``."""
    return orjson.dumps(
        [
            {
                "name": f.name,
                "steps": [
                    {"event_type": s.event_type, "match": dict(s.match)}
                    if s.match
                    else s.event_type
                    for s in f.steps
                ],
                "window": f"{f.window_ms // _HOUR_MS}h",
            }
            for f in funnels
        ]
    ).decode()


# -- property matches ------------------------------------------------------------------------
def step_id(funnel: Funnel, k: int) -> int:
    """The 32-bit id under which ``events.by_user`` says an event matched step ``k`` (0-based) of
    ``funnel``: of the funnel's name, the step's position and its whole definition, so that an
    ingest and an activity stage reading different ENGAGEMENT_FUNNELS (a change being rolled
    out) never take one step's match for another's: an id the fold does not know counts for
    nothing."""
    step = funnel.steps[k]
    return crc32(orjson.dumps([funnel.name, k, step.event_type, step.match]))


@dataclass(frozen=True, slots=True)
class PropertySteps:
    """The funnels' property steps by event type (built once): which ones an event matches."""

    by_type: Mapping[str, tuple[tuple[int, Step], ...]]

    @classmethod
    def of(cls, funnels: tuple[Funnel, ...]) -> PropertySteps:
        by_type: dict[str, list[tuple[int, Step]]] = {}
        for funnel in funnels:
            for k, step in enumerate(funnel.steps):
                if step.match:
                    by_type.setdefault(step.event_type, []).append((step_id(funnel, k), step))
        return cls({event_type: tuple(steps) for event_type, steps in by_type.items()})

    def __bool__(self) -> bool:
        return bool(self.by_type)

    def matched(self, event_type: str, properties: Mapping[str, Any] | None) -> tuple[int, ...]:
        """The step ids of the property steps the event matches (mostly none: one dict miss)."""
        steps = self.by_type.get(event_type)
        if not steps or not properties:
            return ()
        return tuple(i for i, step in steps if step.matches(event_type, properties))


# -- progress ----------------------------------------------------------------------------------
def reached(hits: list[tuple[int, int]], funnel: Funnel) -> list[int]:
    """The time each step was reached, in order, as far as the user got ([] = not entered)."""
    entry = min((ms for ms, step in hits if step == 0), default=None)
    if entry is None:
        return []
    end = entry + funnel.window_ms
    times = [entry]
    for k in range(1, len(funnel.steps)):
        after = times[-1]
        nxt = min((ms for ms, step in hits if step == k and after < ms <= end), default=None)
        if nxt is None:
            break
        times.append(nxt)
    return times


def observe(
    tracks: list[Track],
    funnels: tuple[Funnel, ...],
    ms: int,
    event_type: str,
    matched: Collection[int] = (),
) -> bool:
    """Add the hits of an event to the user's tracks in place; True if progress changed. A
    property step is hit only when ``matched`` holds its :func:`step_id`."""
    changed = False
    for funnel in funnels:
        steps = [
            k
            for k, s in enumerate(funnel.steps)
            if s.event_type == event_type
            and (not s.match or (matched and step_id(funnel, k) in matched))
        ]
        if not steps:
            continue
        track = next((t for t in tracks if t.key == funnel.key), None)
        if track is None:  # also before the entry: a late entry may make these hits count
            track = Track(funnel.key)
            tracks.append(track)
            tracks.sort(key=lambda t: t.key)
        before = list(track.hits)
        track.hits = compact(sorted(set(track.hits) | {(ms, k) for k in steps}), funnel)
        changed = changed or track.hits != before
    return changed


def compact(hits: list[tuple[int, int]], funnel: Funnel) -> list[tuple[int, int]]:
    """The hits that can still matter (module docstring), sorted."""
    times = reached(hits, funnel)
    end = times[0] + funnel.window_ms if times else 2**62
    kept: list[tuple[int, int]] = [(times[0], 0)] if times else []
    for k in range(1, len(funnel.steps)):
        limit = times[k] if k < len(times) else end
        mine = [h for h in hits if h[1] == k and h[0] <= limit]
        early = [h for h in mine if k >= len(times) or h[0] < times[k]]
        kept.extend(early[-EARLY_HITS:])
        if k < len(times):
            kept.append((times[k], k))
    return sorted(set(kept))


def deadline_ms(track: Track, funnel: Funnel) -> int | None:
    """When the user's window ends if they have not converted and not stalled yet."""
    if track.stalled:
        return None
    times = reached(track.hits, funnel)
    if not times or len(times) == len(funnel.steps):
        return None
    return times[0] + funnel.window_ms


def next_deadline_ms(tracks: list[Track], funnels: tuple[Funnel, ...]) -> int | None:
    """The earliest window end among the user's open funnels."""
    by_key = {f.key: f for f in funnels}
    due = [
        d for t in tracks if t.key in by_key and (d := deadline_ms(t, by_key[t.key])) is not None
    ]
    return min(due, default=None)


@dataclass(frozen=True, slots=True)
class Stall:
    """A user whose window ended at ``at_ms`` with ``times`` (the steps reached) only."""

    funnel: Funnel
    times: tuple[int, ...]
    at_ms: int

    def reasons(self) -> dict[str, Any]:
        """The ``funnel`` object of a ``stalled`` signal's reasons."""
        k = len(self.times)
        steps = self.funnel.steps
        return {
            "name": self.funnel.name,
            "step_reached": k,
            "step_reached_event": steps[k - 1].label,
            "next_step": k + 1,
            "next_step_event": steps[k].label,
            "entered_at_ms": self.times[0],
            "reached_at_ms": self.times[-1],
            "days_in_funnel": round_to((self.at_ms - self.times[0]) / 86_400_000, 4),
            "days_at_step": round_to((self.at_ms - self.times[-1]) / 86_400_000, 4),
        }


def due_stalls(tracks: list[Track], funnels: tuple[Funnel, ...], now_ms: int) -> list[Stall]:
    """The stalls whose window ended at or before ``now_ms``; marks their tracks stalled."""
    stalls: list[Stall] = []
    for funnel in funnels:
        track = next((t for t in tracks if t.key == funnel.key), None)
        if track is None:
            continue
        due = deadline_ms(track, funnel)
        if due is not None and due <= now_ms:
            track.stalled = True
            stalls.append(Stall(funnel, tuple(reached(track.hits, funnel)), due))
    stalls.sort(key=lambda s: (s.at_ms, s.funnel.name))
    return stalls


def progress_of(tracks: list[Track], funnels: tuple[Funnel, ...]) -> list[dict[str, Any]]:
    """Each entered funnel's progress, for looking one user up: the steps reached and when (ms),
    whether the user converted, when the window ends, whether the stall was signalled."""
    by_key = {t.key: t for t in tracks}
    out = []
    for funnel in funnels:
        track = by_key.get(funnel.key)
        times = reached(track.hits, funnel) if track is not None else []
        if track is None or not times:
            continue
        out.append(
            {
                "funnel": funnel.name,
                "steps_reached": [
                    {"step": k + 1, "event": funnel.steps[k].label, "at_ms": ms}
                    for k, ms in enumerate(times)
                ],
                "converted": len(times) == len(funnel.steps),
                "window_ends_ms": times[0] + funnel.window_ms,
                "stalled": track.stalled,
            }
        )
    return out
