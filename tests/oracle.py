"""An independent oracle: engagement numbers and signals computed straight from raw events.

Plain Python over (user, event id, timestamp, channel) tuples, sharing no code with the engine
(standard library only: nothing from ``agents``, ``streams`` or ``schemas``), so tests can check
the live gauges and the pushed signals against the definitions in ARCHITECTURE.md.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from hashlib import blake2b, sha256
from typing import Literal
from zoneinfo import ZoneInfo

DAY_MS = 86_400_000


@dataclass(frozen=True)
class RawEvent:
    user_id: str
    event_id: str
    timestamp_ms: int
    channel: str | None = None

    def canonical(self) -> dict[str, object]:
        """The canonical JSON object of this event, as an upstream service would publish it."""
        body: dict[str, object] = {
            "event_id": self.event_id,
            "user_id": self.user_id,
            "event_type": "page_view",
            "timestamp": self.timestamp_ms,
        }
        if self.channel:
            body["channel"] = self.channel
        return body


@dataclass
class Oracle:
    days: dict[str, set[int]]
    channel: dict[str, str]

    @classmethod
    def from_events(cls, events: Iterable[RawEvent], channels: Sequence[str]) -> Oracle:
        days: dict[str, set[int]] = {}
        first: dict[str, tuple[int, int]] = {}
        rank = {name: i + 1 for i, name in enumerate(channels)}
        for e in {(e.user_id, e.event_id): e for e in events}.values():
            days.setdefault(e.user_id, set()).add(e.timestamp_ms // DAY_MS)
            ch = rank.get(e.channel or "", 0)
            cand = (e.timestamp_ms, -ch)
            if e.user_id not in first or cand < first[e.user_id]:
                first[e.user_id] = cand
        names = ("other", *channels)
        return cls(days, {u: names[-key[1]] for u, key in first.items()})

    def active(self, today: int, width: int) -> int:
        low = today - width + 1
        return sum(1 for ds in self.days.values() if any(low <= d <= today for d in ds))

    def lifecycle(self, today: int) -> dict[str, int]:
        out = Counter({"new": 0, "returning": 0, "resurrecting": 0, "dormant": 0})
        for ds in self.days.values():
            if today in ds and min(ds) == today:
                out["new"] += 1
            elif today in ds and today - 1 in ds:
                out["returning"] += 1
            elif today in ds:
                out["resurrecting"] += 1
            elif today - 1 in ds:
                out["dormant"] += 1
        return dict(out)

    def retention(self, cohort_day: int, n: int, channel: str) -> tuple[int, int, int]:
        """(cohort size, active on day N, active on day N or later)."""
        size = on = after = 0
        for user, ds in self.days.items():
            if min(ds) != cohort_day or self.channel[user] != channel:
                continue
            size += 1
            on += cohort_day + n in ds
            after += any(d >= cohort_day + n for d in ds)
        return size, on, after


def population(
    seed: int, users: int, days: int, start_ms: int, channels: Sequence[str]
) -> list[RawEvent]:
    """Users arriving over ``days`` from ``channels`` (plus unknown ones), each active on a
    day with its own probability, 1-3 events per active day."""
    rnd = random.Random(seed)
    events = []
    for u in range(users):
        first = rnd.randrange(days)
        rate = rnd.choice([0.05, 0.3, 0.8])
        channel = rnd.choice([*channels, None, "tiktok"])
        for day in range(first, days):
            if day == first or rnd.random() < rate:
                for k in range(rnd.randint(1, 3)):
                    ms = start_ms + day * DAY_MS + rnd.randrange(DAY_MS)
                    events.append(RawEvent(f"u{u}", f"u{u}-{day}-{k}", ms, channel))
    return events


def disorder(events: list[RawEvent], seed: int, lateness_ms: int) -> list[RawEvent]:
    """Arrival order: time order with jitter inside the lateness, 2 % of the events arriving
    2-10 days late, and 5 % duplicates arriving anywhere from on time to 10 days later."""
    rnd = random.Random(seed)
    keyed = []
    for event in events:
        if rnd.random() < 0.02:
            keyed.append((event.timestamp_ms + rnd.randint(2, 10) * DAY_MS, event))
        else:
            keyed.append((event.timestamp_ms + rnd.randrange(lateness_ms), event))
    for event in rnd.sample(events, len(events) // 20):
        keyed.append((event.timestamp_ms + rnd.randrange(10 * DAY_MS), event))
    keyed.sort(key=lambda pair: pair[0])
    return [event for _, event in keyed]


# -- signals -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignalRules:
    """The settings the signal definitions depend on (ARCHITECTURE.md, "Definitions")."""

    dormant_days: float = 7.0  # D
    churned_days: float = 30.0  # C
    discard_days: float = 400.0  # a churned user's state is forgotten after this long
    alive_threshold: float = 0.5  # p*
    lateness_ms: int = 3_600_000
    timezone: str = "UTC"
    r: float = 0.8
    alpha: float = 4.0
    a: float = 0.3
    b: float = 3.0


@dataclass(frozen=True)
class ExpectedSignal:
    """``trigger_ms`` identifies the signal; ``at_ms`` is when it became true: the deadline,
    or for ``reactivated`` the first event after the silence (whose trigger is the last event
    before it, so that reordered returns share one id)."""

    user_id: str
    kind: str
    trigger_ms: int
    at_ms: int

    @property
    def signal_id(self) -> str:
        return signal_id(self.user_id, self.kind, self.trigger_ms)


@dataclass
class ExpectedSignals:
    """What :func:`expected_signals` finds, in time order per user."""

    signals: list[ExpectedSignal] = field(default_factory=list)

    def identities(self, exclude: Iterable[str] = ()) -> set[tuple[str, str, int]]:
        skip = set(exclude)
        return {(s.user_id, s.kind, s.trigger_ms) for s in self.signals if s.user_id not in skip}


def signal_id(user_id: str, kind: str, trigger_ms: int) -> str:
    """blake2b-128 (hex) of user id, kind and trigger instant, joined by the unit separator
    (signal.schema.json; its examples pin the exact bytes)."""
    return blake2b(f"{user_id}\x1f{kind}\x1f{trigger_ms}".encode(), digest_size=16).hexdigest()


@dataclass
class _Life:
    """One user's facts since their first event (or since their state was forgotten)."""

    last_ms: int
    days: set[int]  # local calendar days (date ordinals) with activity
    stage: str = "live"  # live (new, active, reactivated) | at_risk | dormant | churned


class _SignalOracle:
    def __init__(self, rules: SignalRules, now_ms: int) -> None:
        self.rules = rules
        self.now_ms = now_ms
        self.tz = ZoneInfo(rules.timezone)
        self.result = ExpectedSignals()

    def day(self, ms: int) -> int:
        return datetime.fromtimestamp(ms // 1000, self.tz).date().toordinal()

    def midnight_ms(self, day: int) -> int:
        start = date.fromordinal(day)
        local = datetime(start.year, start.month, start.day, tzinfo=self.tz)
        return round(local.astimezone(UTC).timestamp() * 1000)

    def risk_ms(self, life: _Life) -> float:
        """When P(alive) falls to p* with no further activity, from the closed form
        T* = (alpha + t_x) * ((1/p* - 1) * (b + x) / a) ** (1 / (r + x)) - alpha, T in days
        from the start of the first active day; inf if it never comes. If T* lies before the
        last event, P(alive) is below p* from that activity on: it is the crossing."""
        rules = self.rules
        x = len(life.days) - 1
        t_x = max(life.days) - min(life.days)
        odds = (1 / rules.alive_threshold - 1) * (rules.b + x) / rules.a
        try:
            t_star = (rules.alpha + t_x) * math.pow(odds, 1 / (rules.r + x)) - rules.alpha
        except OverflowError:
            return math.inf
        if not math.isfinite(t_star):
            return math.inf
        return max(self.midnight_ms(min(life.days)) + math.ceil(t_star * DAY_MS), life.last_ms)

    def next_deadline(self, life: _Life) -> tuple[str, float]:
        """The user's next stage change if they stay away: at risk only while live and only
        if P(alive) crosses p* before the dormant delay is up; then dormant, churned, forgotten."""
        rules, last = self.rules, life.last_ms
        if life.stage == "live":
            dormant = last + round(rules.dormant_days * DAY_MS)
            risk = self.risk_ms(life)
            return ("churn_risk", risk) if risk < dormant else ("dormant", dormant)
        if life.stage == "at_risk":
            return "dormant", last + round(rules.dormant_days * DAY_MS)
        if life.stage == "dormant":
            return "churned", last + round(rules.churned_days * DAY_MS)
        return "discard", last + round(rules.discard_days * DAY_MS)

    def silence(self, user: str, life: _Life, next_ms: int | None) -> _Life | Literal[False] | None:
        """Every deadline due before the next event (inclusive; or up to now): their signals,
        and None if the user's state is forgotten. False if a deadline before the next event
        lies after now: the clock has not decided it yet, nor anything after it."""
        until = self.now_ms if next_ms is None else min(next_ms, self.now_ms)
        while True:
            kind, due = self.next_deadline(life)
            if due > until:
                return False if next_ms is not None and due <= next_ms else life
            due = int(due)
            if kind == "discard":
                return None
            self.result.signals.append(ExpectedSignal(user, kind, due, due))
            life.stage = {"churn_risk": "at_risk"}.get(kind, kind)

    def activity(self, user: str, life: _Life, ms: int) -> None:
        """An event at ``ms`` (events come in time order): a dormant or churned user returns;
        an at-risk user is live again on a new active day (the same day changes nothing the
        churn model sees)."""
        day = self.day(ms)
        if life.stage in ("dormant", "churned") and ms > life.last_ms:
            self.result.signals.append(ExpectedSignal(user, "reactivated", life.last_ms, ms))
            life.stage = "live"
        elif life.stage == "at_risk" and day > max(life.days):
            life.stage = "live"
        life.last_ms = max(life.last_ms, ms)
        life.days.add(day)

    def user(self, user: str, times: list[int]) -> None:
        life: _Life | None = None
        for ms in times:
            if life is not None:
                after = self.silence(user, life, ms)
                if after is False:
                    return  # the clock has not reached a deadline before this event
                life = after
            if life is None:
                life = _Life(ms, {self.day(ms)})
            else:
                self.activity(user, life, ms)
        if life is not None:
            self.silence(user, life, None)


def expected_signals(
    events: Iterable[RawEvent], rules: SignalRules, now_ms: int
) -> ExpectedSignals:
    """The signals the definitions imply for ``events`` once the event clock reached ``now_ms``
    (the watermark at the end of the replay: at least the newest event time minus the lateness).

    Deadlines fire up to the next event (inclusive) and up to now. A user whose next deadline
    before an event lies after now has nothing decided from there on: an event read later may
    still land before that deadline. Deadlines count in elapsed days from the last event;
    calendar days (timezone) only enter the churn model's x, t_x and T.

    Only event times matter: duplicates, batching and arrival order change nothing for a user
    none of whose events is *read late*, i.e. read when its partition's event clock (the newest
    event time the partition had read before that event's batch, minus the lateness; or the
    watermark the partition was given) had already passed the event's time. A late-read event
    cannot undo what has fired (ARCHITECTURE.md, "Clocks and lateness"), so for such a user
    the engine may differ from this.
    """
    times: dict[str, set[int]] = {}
    for event in events:
        times.setdefault(event.user_id, set()).add(event.timestamp_ms)
    oracle = _SignalOracle(rules, now_ms)
    for user in sorted(times):
        oracle.user(user, sorted(times[user]))
    return oracle.result


# -- holdout and return rates --------------------------------------------------------------------


def holdout_arm(user_id: str, kind: str, salt: str, share: float) -> str:
    """The arm the signal schema documents: SHA-256 of user, kind and salt joined by the unit
    separator; its first 8 bytes big-endian over 2**64 below the share means holdout."""
    draw = int.from_bytes(sha256(f"{user_id}\x1f{kind}\x1f{salt}".encode()).digest()[:8], "big")
    return "holdout" if share > 0 and draw / 2**64 < share else "treatment"


@dataclass
class ReturnTruth:
    """Per (kind, arm, channel): signals; per (kind, arm, channel, window): signals whose window
    has closed, and of them those whose user had an event within the window after the signal."""

    signalled: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    eligible: Counter[tuple[str, str, str, str]] = field(default_factory=Counter)
    returned: Counter[tuple[str, str, str, str]] = field(default_factory=Counter)


def return_truth(
    signals: Iterable[tuple[str, str, str, str, int]],
    events: Iterable[RawEvent],
    today: int,
    windows: Sequence[int] = (1, 7, 30),
) -> ReturnTruth:
    """``signals``: (user, kind, arm, channel, signal ms), one per signal id; ``today``: the UTC
    day number of the clock. A window of N days has closed for a signal of day d when
    d + N < today; the user returned within it with an event in (signal, signal + N days]."""
    times: dict[str, list[int]] = {}
    for event in events:
        times.setdefault(event.user_id, []).append(event.timestamp_ms)
    truth = ReturnTruth()
    for user, kind, arm, channel, at in signals:
        truth.signalled[(kind, arm, channel)] += 1
        after = [t - at for t in times.get(user, ()) if t > at]
        first = min(after) if after else None
        for n_days in windows:
            if at // DAY_MS + n_days < today:
                key = (kind, arm, channel, f"{n_days}d")
                truth.eligible[key] += 1
                truth.returned[key] += first is not None and first <= n_days * DAY_MS
    return truth
