"""The simulated population behind ``engagement simulate``: seeded, reproducible users.

Users arrive over time from acquisition channels that retain differently. Each user follows a
buy-till-you-die process (as :func:`agents.logic.fit.simulate_mbgnbd`, but in calendar days):
an activity rate lambda ~ Gamma(r, 1/alpha) gives the chance ``1 - exp(-lambda * season)`` of
being active on a day (``season`` is ``weekend_factor`` on Saturdays and Sundays, else 1), and
after each active day the user drops out with probability p ~ Beta(a, b). A share of the users
who drop out come back once (win-back) after a dormant spell.

A win-back **campaign** (``winback_effect`` > 0) acts on the dormant signals the worker will
send: a user silent for ``dormant_days`` whole days after an active day becomes dormant on day
L + D; if their arm for ``dormant`` is treatment (the worker's hash,
:func:`agents.logic.holdout.arm_of`, with the same salt and share), they respond with probability
``winback_effect`` by coming back 1 to 3 days later (unless they were coming back before that
anyway). Holdout users draw the same coin but are never acted on, so their plans are what the
treated users' would have been; each plan records its spells (:class:`Spell`) as ground truth.

Events are canonical JSON (``schemas/user_event.schema.json``) in global event-time order: plans
are drawn per user, then the events are made and sorted one day at a time.
"""

from __future__ import annotations

import bisect
import math
import random
from array import array
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from hashlib import blake2b
from operator import itemgetter
from typing import Any

from agents.logic.holdout import TREATMENT, arm_of
from agents.logic.partitioning import partition_for
from streams.tools.onboarding import onboarding_events

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
_EPOCH = date(1970, 1, 1)


@dataclass(frozen=True, slots=True)
class Channel:
    """An acquisition channel: its share of arrivals and its users' BTYD parameters.

    Activity rate lambda ~ Gamma(shape ``rate_r``, scale ``1 / rate_alpha``) active days per day
    (mean ``rate_r / rate_alpha``); dropout after each active day p ~ Beta(``drop_a``,
    ``drop_b``) (mean ``drop_a / (drop_a + drop_b)``). Higher rate, lower dropout: retains better.
    """

    name: str
    share: float
    rate_r: float
    rate_alpha: float
    drop_a: float
    drop_b: float


DEFAULT_CHANNELS = (  # best retention first
    Channel("organic", 0.32, 2.0, 3.5, 1.0, 14.0),
    Channel("referral", 0.10, 2.0, 4.0, 1.0, 10.0),
    Channel("email", 0.14, 1.5, 4.0, 1.0, 7.0),
    Channel("paid_search", 0.24, 1.5, 5.0, 1.2, 5.0),
    Channel("paid_social", 0.20, 1.0, 5.0, 1.5, 3.0),
)
DEFAULT_MIX = (
    ("page_view", 0.40),
    ("screen_view", 0.10),
    ("click", 0.16),
    ("search", 0.09),
    ("add_to_cart", 0.08),
    ("purchase", 0.05),
    ("share", 0.04),
    ("comment", 0.03),
    ("invite", 0.02),
    ("review", 0.02),
    ("feedback", 0.01),
)
PLATFORMS = ("web", "ios", "android")
# Relative weight of each UTC hour for session starts: quiet nights, busy evenings.
HOUR_WEIGHTS = (1, 1, 1, 1, 1, 2, 3, 5, 6, 6, 6, 6, 7, 6, 6, 6, 6, 7, 8, 9, 9, 7, 4, 2)


def default_start(days: int) -> date:
    """Day 0 such that the last simulated day is yesterday (UTC): every event is in the past."""
    return datetime.now(UTC).date() - timedelta(days=days)


@dataclass(frozen=True, slots=True)
class SimulationConfig:
    """What to simulate. ``start`` None: the ``days`` days before today (UTC)."""

    users: int = 2_000
    days: int = 60
    start: date | None = None
    seed: int = 7
    channels: tuple[Channel, ...] = DEFAULT_CHANNELS
    arrival_days: int | None = None  # users arrive over the first N days (default: all)
    weekend_factor: float = 0.6  # activity rate multiplier on Saturdays and Sundays
    winback_share: float = 0.25  # share of dropped-out users who come back (once)
    winback_after: tuple[int, int] = (10, 35)  # their dormant spell, days (uniform)
    events_per_day: tuple[int, int] = (1, 4)  # events on an active day (uniform)
    event_mix: tuple[tuple[str, float], ...] = DEFAULT_MIX  # after the day's session_start
    close_partitions: int = 0  # P > 0: end with one event per input partition (event clock)
    winback_effect: float = 0.0  # campaign: chance a treated dormant user comes back for it
    holdout_share: float = 0.1  # as the worker's ENGAGEMENT_HOLDOUT_SHARE
    holdout_salt: str = "engagement"  # as the worker's ENGAGEMENT_HOLDOUT_SALT
    dormant_days: int = 7  # as the worker's ENGAGEMENT_DORMANT_AFTER, in whole days
    user_prefix: str = "u"
    onboarding: bool = False  # first days start with the onboarding funnel (tools.onboarding)
    first_day: int = field(init=False)

    def __post_init__(self) -> None:
        if self.users < 1 or self.days < 1:
            raise ValueError("a simulation needs at least one user and one day")
        if not self.channels or any(c.share <= 0 for c in self.channels):
            raise ValueError("channels need positive shares")
        if not 0.0 <= self.winback_share <= 1.0:
            raise ValueError("winback_share must be within [0, 1]")
        if not 0.0 <= self.winback_effect <= 1.0:
            raise ValueError("winback_effect must be within [0, 1]")
        lo, hi = self.events_per_day
        if not 1 <= lo <= hi:
            raise ValueError("events_per_day must be (low, high) with 1 <= low <= high")
        start = self.start or default_start(self.days)
        object.__setattr__(self, "first_day", (start - _EPOCH).days)

    @property
    def start_ms(self) -> int:
        return self.first_day * DAY_MS

    @property
    def end_ms(self) -> int:
        """Midnight after the last simulated day (exclusive end of event time)."""
        return (self.first_day + self.days) * DAY_MS

    def is_weekend(self, day: int) -> bool:
        """Day ``day`` of the simulation (0-based) is a Saturday or Sunday."""
        return (self.first_day + day + 3) % 7 >= 5  # 1970-01-01 was a Thursday


@dataclass(frozen=True, slots=True)
class Spell:
    """A dormant spell the campaign saw: the day the user turns dormant (0-based), their arm
    (0 treatment, 1 holdout), whether they would respond, the day they would come back for the
    campaign, and the day they come back without it (None: not within the simulation)."""

    signal_day: int
    arm: int
    responds: bool
    campaign_day: int
    planned_day: int | None


@dataclass(frozen=True, slots=True)
class UserPlan:
    """One user's drawn life: channel, active days (0-based), first dropout, planned return."""

    index: int
    user_id: str
    channel: int
    active_days: tuple[int, ...]
    dropped_day: int | None  # the active day after which the user first dropped out
    return_day: int | None  # win-back: the planned return (may lie past the last day)
    spells: tuple[Spell, ...] = ()  # the campaign's dormant spells (winback_effect > 0)


class _Planner:
    """Draws user plans from one random stream (deterministic for a seed)."""

    def __init__(self, config: SimulationConfig) -> None:
        self.config = config
        self.rnd = random.Random(config.seed)
        total = sum(c.share for c in config.channels)
        self.cum_shares = list(_cumulative([c.share / total for c in config.channels]))
        self.weekend = [config.is_weekend(d) for d in range(config.days)]
        self.arrival_days = max(1, min(config.arrival_days or config.days, config.days))

    def plan(self, index: int) -> UserPlan:
        cfg, rnd = self.config, self.rnd
        ch = min(bisect.bisect(self.cum_shares, rnd.random()), len(cfg.channels) - 1)
        channel = cfg.channels[ch]
        lam = rnd.gammavariate(channel.rate_r, 1.0 / channel.rate_alpha)
        p = rnd.betavariate(channel.drop_a, channel.drop_b)
        q_week = 1.0 - math.exp(-lam)
        q_weekend = 1.0 - math.exp(-lam * cfg.weekend_factor)
        day = rnd.randrange(self.arrival_days)
        active = [day]
        dropped: int | None = None
        back: int | None = None
        while True:
            if rnd.random() < p:  # dropout after this active day
                if dropped is not None or rnd.random() >= cfg.winback_share:
                    dropped = day if dropped is None else dropped
                    break
                dropped = day
                back = day + rnd.randint(*cfg.winback_after)
                day = back
            else:
                day = self._next_active(day + 1, q_week, q_weekend)
            if day >= cfg.days:
                break
            active.append(day)
        user = self.user_id(index)
        if cfg.winback_effect > 0:
            days, spells = campaign(user, active, cfg)
            return UserPlan(index, user, ch, days, dropped, back, spells)
        return UserPlan(index, user, ch, tuple(active), dropped, back)

    def _next_active(self, day: int, q_week: float, q_weekend: float) -> int:
        rnd, weekend, days = self.rnd, self.weekend, self.config.days
        while day < days and rnd.random() >= (q_weekend if weekend[day] else q_week):
            day += 1
        return day

    def user_id(self, index: int) -> str:
        return f"{self.config.user_prefix}{index:07d}"


def _coin(seed: int, user: str, day: int) -> tuple[float, int]:
    """A user's campaign draw for a spell: uniform [0, 1), and a delay of 1 to 3 days."""
    digest = blake2b(f"{seed}\x1f{user}\x1f{day}".encode(), digest_size=9).digest()
    return int.from_bytes(digest[:8], "big") / 2**64, 1 + digest[8] % 3


def campaign(
    user: str, active: list[int], cfg: SimulationConfig
) -> tuple[tuple[int, ...], tuple[Spell, ...]]:
    """The active days with the campaign's returns added, and the dormant spells it saw."""
    queue, days, spells = list(active), [], []
    while queue:
        day = queue.pop(0)
        days.append(day)
        signal_day = day + cfg.dormant_days
        if signal_day >= cfg.days or (queue and queue[0] <= signal_day):
            continue  # never dormant (or on the very day: the hour decides; left alone)
        draw, delay = _coin(cfg.seed, user, day)
        arm = arm_of(user, "dormant", cfg.holdout_salt, cfg.holdout_share)
        comeback = signal_day + delay
        planned = queue[0] if queue else None
        spell = Spell(signal_day, arm, draw < cfg.winback_effect, comeback, planned)
        spells.append(spell)
        acted = arm == TREATMENT and spell.responds and comeback < cfg.days
        if acted and (not queue or comeback < queue[0]):
            queue.insert(0, comeback)
    return tuple(days), tuple(spells)


def _cumulative(weights: Iterable[float]) -> Iterator[float]:
    total = 0.0
    for weight in weights:
        total += weight
        yield total


def plan_users(config: SimulationConfig) -> Iterator[UserPlan]:
    """Every user's plan, in user order (the ground truth behind :func:`simulate`)."""
    planner = _Planner(config)
    for index in range(config.users):
        yield planner.plan(index)


class _EventMaker:
    """Turns (user, day) into that day's events; one random stream, deterministic."""

    def __init__(self, config: SimulationConfig) -> None:
        self.config = config
        self.rnd = random.Random(config.seed ^ 0x5EED5EED)
        total = sum(w for _, w in config.event_mix)
        self.types = [t for t, _ in config.event_mix]
        self.cum_types = list(_cumulative(w / total for _, w in config.event_mix))
        hours = sum(HOUR_WEIGHTS)
        self.cum_hours = list(_cumulative(w / hours for w in HOUR_WEIGHTS))
        self.names = [c.name for c in config.channels]

    def day_events(
        self, user: str, channel: int, day: int, first: bool = False
    ) -> list[dict[str, Any]]:
        cfg, rnd = self.config, self.rnd
        day_start = cfg.start_ms + day * DAY_MS
        day_end = day_start + DAY_MS - 1
        hour = min(bisect.bisect(self.cum_hours, rnd.random()), 23)
        ts = day_start + hour * HOUR_MS + int(rnd.random() * HOUR_MS)
        session = f"{user}-{day}"
        platform = PLATFORMS[int(rnd.random() * 3)]
        n_types = len(self.types) - 1
        events = []
        for i in range(rnd.randint(*cfg.events_per_day)):
            if i == 0:
                kind = "session_start"
            else:
                kind = self.types[min(bisect.bisect(self.cum_types, rnd.random()), n_types)]
            event: dict[str, Any] = {
                "schema_version": 1,
                "event_id": f"sim{cfg.seed}-{session}-{i}",
                "user_id": user,
                "event_type": kind,
                "timestamp": ts,
                "channel": self.names[channel],
                "platform": platform,
                "session_id": session,
            }
            if kind == "purchase":
                event["properties"] = {"amount": round(5 + rnd.random() * 115, 2)}
            events.append(event)
            ts = min(ts + 5_000 + int(rnd.random() * 175_000), day_end)
        if first and cfg.onboarding:
            events += onboarding_events(cfg.seed, user, self.names[channel], events[0], day_end)
        return events


_TIMESTAMP = itemgetter("timestamp")


def simulate(config: SimulationConfig) -> Iterator[dict[str, Any]]:
    """The population's events in event-time order (then, if asked, the closing events)."""
    planner = _Planner(config)
    by_day = [array("l") for _ in range(config.days)]
    channels = bytearray(config.users)
    seen = bytearray(config.users)  # whether the user's first active day has been made
    for index in range(config.users):
        plan = planner.plan(index)
        channels[index] = plan.channel
        for day in plan.active_days:
            by_day[day].append(index)
    maker = _EventMaker(config)
    last_chunk: list[dict[str, Any]] = []
    for day, users in enumerate(by_day):
        chunk: list[dict[str, Any]] = []
        for index in users:
            chunk += maker.day_events(planner.user_id(index), channels[index], day, not seen[index])
            seen[index] = 1
        chunk.sort(key=_TIMESTAMP)
        by_day[day] = array("l")  # free it as we go
        yield from chunk
        last_chunk = chunk
    if config.close_partitions > 0:
        yield from closing_events(config, last_chunk, planner.user_id)


def closing_events(
    config: SimulationConfig, last_day: list[dict[str, Any]], user_id: Callable[[int], str]
) -> Iterator[dict[str, Any]]:
    """One event per input partition at the last millisecond of the last day.

    On the event clock each input partition's newest event holds the watermark back; these
    bring every partition to the end without changing any count: each comes from a user already
    active that day on that partition (any simulated user of the partition if none was).
    """
    parts = config.close_partitions
    chosen: dict[int, dict[str, Any]] = {}
    for event in reversed(last_day):
        chosen.setdefault(partition_for(event["user_id"].encode(), parts), event)
        if len(chosen) == parts:
            break
    index = 0
    while len(chosen) < parts and index < config.users * 4:
        user = user_id(index % config.users)
        part = partition_for(user.encode(), parts)
        if part not in chosen:
            name = config.channels[0].name
            chosen[part] = {"user_id": user, "channel": name, "platform": "web"}
        index += 1
    for part in sorted(chosen):
        base = chosen[part]
        yield {
            "schema_version": 1,
            "event_id": f"sim{config.seed}-close-{part}",
            "user_id": base["user_id"],
            "event_type": "page_view",
            "timestamp": config.end_ms - 1,
            "channel": base["channel"],
            "platform": base["platform"],
        }
