"""Folding canonical events into a user's state: idempotent and order-insensitive.

Active days and per-category active days are sets (bitmaps); first and last event time are a
min and a max; the first-touch channel belongs to the earliest event (ties: the larger channel
index). So duplicates change nothing and any reordering gives the same state. The one exception
is documented: an event older than the horizon, counted back from the user's newest active day,
can only move the first event (and ``x_extra`` when it is older than the first day), because
the days in between are no longer known.

Duplicates are detected on the ``recent_ids`` newest ``(event time, crc32(event_id))`` pairs of
the user, kept as a top-k set so that it, too, does not depend on arrival order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from zlib import crc32

from agents.logic.days import Calendar
from agents.logic.funnels import Funnel, PropertySteps
from agents.logic.state import Pending, Stage, UserState
from schemas.records import Activity, EventLike


@dataclass(frozen=True, slots=True)
class FoldConfig:
    """What the fold needs to know; built once from Settings."""

    calendar: Calendar
    horizon_days: int
    # plain dicts, not Mappings: compiled, a dict's get is a primitive, a Mapping's a method call
    channel_index: dict[str, int]  # allow-listed channel -> 1..n; anything else is 0 (other)
    category_index: dict[str, int]  # event type -> category bitmap index
    n_categories: int
    recent_ids: int = 4
    funnels: tuple[Funnel, ...] = ()  # ENGAGEMENT_FUNNELS (progress: agents.logic.funnels)
    # the funnels' property steps, to match events read with their properties
    property_steps: PropertySteps = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "property_steps", PropertySteps.of(self.funnels))

    @classmethod
    def build(
        cls,
        calendar: Calendar,
        horizon_days: int,
        channels: Sequence[str],
        categories: Sequence[tuple[str, Sequence[str]]],
        recent_ids: int = 4,
        *,
        funnels: tuple[Funnel, ...] = (),
    ) -> FoldConfig:
        category_index = {etype: i for i, (_, types) in enumerate(categories) for etype in types}
        return cls(
            calendar,
            horizon_days,
            {name: i + 1 for i, name in enumerate(channels)},
            category_index,
            len(categories),
            recent_ids,
            funnels,
        )


def fingerprint(event_id: str) -> int:
    """A stable 32-bit fingerprint of an event id (stable across processes, unlike hash())."""
    return crc32(event_id.encode())


def pending_of(event: EventLike, config: FoldConfig) -> Pending:
    """What the fold needs of ``event``, to keep while the event is deferred."""
    return _pending(event.timestamp_ms, event.event_id, event.event_type, event.channel, config)


def row_of(event: EventLike, steps: PropertySteps | None) -> Activity:
    """The engine's input row of ``event``: the event itself if it is one (an ``events.by_user``
    row), else the row of a canonical event (tests, tools) with the ids of the funnels' property
    steps it matches (``steps``; None: no funnels), as the ingest finds them for its rows."""
    if isinstance(event, Activity):
        return event
    matches = steps.matched(event.event_type, event.properties) if steps is not None else ()
    return Activity(
        event.user_id, event.timestamp_ms, event.event_id, event.event_type, event.channel, matches
    )


def row_pending(row: Activity, config: FoldConfig) -> Pending:
    """:func:`pending_of` of an ``events.by_user`` row, the engine's input. Compiled, a row's
    fields are read as tuple items, where an ``EventLike``'s (a union) are looked up by name."""
    return _pending(row.timestamp_ms, row.event_id, row.event_type, row.channel, config)


def _pending(
    ms: int, event_id: str, event_type: str, channel: str | None, config: FoldConfig
) -> Pending:
    category = config.category_index.get(event_type, -1)
    return (
        ms,
        fingerprint(event_id),
        category,
        config.channel_index.get(channel, 0) if channel else 0,
    )


def new_state(event: EventLike, day: int, config: FoldConfig) -> UserState:
    """The state of a user whose first seen event is ``event``."""
    return new_state_of(pending_of(event, config), day, config)


def new_state_of(event: Pending, day: int, config: FoldConfig) -> UserState:
    """:func:`new_state` of a deferred event."""
    ms, fp, category, channel = event
    categories = [0] * config.n_categories
    if category >= 0:
        categories[category] = 1
    return UserState(
        first_ms=ms,
        last_ms=ms,
        last_day=day,
        channel=channel,
        categories=categories,
        recent=[(ms, fp)],
        stage=Stage.NEW,  # stage_since_ms is set by the lifecycle once the batch is folded
    )


def _remember(state: UserState, key: tuple[int, int], keep: int) -> bool:
    """Add ``key`` to the top-k recent set; False if it was there already (a duplicate).

    ``recent`` is kept newest first, so an event newer than every remembered one (the common
    case: events mostly arrive in order) goes in front without a search or a sort."""
    recent = state.recent
    if not recent or key[0] > recent[0][0]:
        recent.insert(0, key)
        del recent[keep:]
        return True
    if key in recent:
        return False
    if len(recent) >= keep and key < recent[-1]:
        return True  # older than every remembered event: new to us, nothing to remember
    recent.append(key)
    recent.sort(reverse=True)
    del recent[keep:]
    return True


def _mark_day(state: UserState, day: int, category: int | None, config: FoldConfig) -> None:
    horizon = config.horizon_days
    shift = day - state.last_day
    if shift > 0:
        days = state.days << shift
        aged = days >> horizon
        if aged:
            state.x_extra += aged.bit_count()
            days &= (1 << horizon) - 1
        state.days = days | 1
        mask = (1 << horizon) - 1
        state.categories = [(bits << shift) & mask for bits in state.categories]
        state.last_day = day
        if category is not None:
            state.categories[category] |= 1
    elif -shift < horizon:
        state.days |= 1 << -shift
        if category is not None:
            state.categories[category] |= 1 << -shift
    elif day < config.calendar.day_of(state.first_ms):
        state.x_extra += 1  # beyond the horizon but before the first day: surely a new day


def fold(state: UserState, event: EventLike, day: int, config: FoldConfig) -> bool:
    """Fold ``event`` (on local ``day``) into ``state`` in place; False if it is a duplicate."""
    return _fold_fields(
        state, event.timestamp_ms, event.event_id, event.event_type, event.channel, day, config
    )


def fold_row(state: UserState, row: Activity, day: int, config: FoldConfig) -> bool:
    """:func:`fold` of an ``events.by_user`` row, the engine's input (see :func:`row_pending`)."""
    return _fold_fields(
        state, row.timestamp_ms, row.event_id, row.event_type, row.channel, day, config
    )


def _fold_fields(  # noqa: PLR0917 (an event's four fields, then fold's day and config)
    state: UserState,
    ms: int,
    event_id: str,
    event_type: str,
    channel: str | None,
    day: int,
    config: FoldConfig,
) -> bool:
    if not _remember(state, (ms, fingerprint(event_id)), config.recent_ids):
        return False
    _mark_day(state, day, config.category_index.get(event_type), config)
    _extremes(state, ms, config.channel_index.get(channel, 0) if channel else 0)
    return True


def fold_pending(state: UserState, event: Pending, day: int, config: FoldConfig) -> bool:
    """:func:`fold` of a deferred event."""
    ms, fp, category, channel = event
    if not _remember(state, (ms, fp), config.recent_ids):
        return False
    _mark_day(state, day, category if category >= 0 else None, config)
    _extremes(state, ms, channel)
    return True


def _extremes(state: UserState, ms: int, channel: int) -> None:
    state.last_ms = max(state.last_ms, ms)
    if ms < state.first_ms or (ms == state.first_ms and channel > state.channel):
        state.first_ms = ms
        state.channel = channel
