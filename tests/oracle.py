"""An independent oracle: engagement numbers computed straight from raw events.

Plain Python over (user, event id, timestamp, channel) tuples, sharing no code with the engine,
so tests can check the live gauges against the definitions in ARCHITECTURE.md.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

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
