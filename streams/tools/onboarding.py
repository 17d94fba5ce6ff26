"""The simulator's onboarding funnel: new users sign up, complete their profile, then reach the
product's value, each channel losing a different share at each step.

With ``SimulationConfig.onboarding`` the first active day of every user starts with
``signup`` and goes on step by step with the chances of :data:`GO_ON` for the user's channel
(minutes apart, inside that day's session). The draws come from a stream of their own per user,
so the rest of the population (active days, other events) is the same with or without it.
The steps are those of :data:`agents.logic.funnels.ACTIVATION_FUNNEL`.
"""

from __future__ import annotations

import random
from typing import Any

ONBOARDING_STEPS = ("signup", "profile_completed", "first_value")
# channel -> chance of going on from step 1 to 2, and from 2 to 3. The second step is the weak
# one overall (and collapses for paid social); organic users hardly drop at all.
GO_ON = {
    "organic": (0.90, 0.75),
    "referral": (0.85, 0.70),
    "email": (0.80, 0.55),
    "paid_search": (0.75, 0.40),
    "paid_social": (0.70, 0.15),
}
DEFAULT_GO_ON = (0.75, 0.45)  # a channel not listed above


def onboarding_events(
    seed: int, user: str, channel: str, first: dict[str, Any], day_end_ms: int
) -> list[dict[str, Any]]:
    """The user's onboarding events, ``first`` being the first event of their first day."""
    rnd = random.Random(f"{seed}\x1f{user}\x1fonboarding")
    chances = GO_ON.get(channel, DEFAULT_GO_ON)
    ts = first["timestamp"]
    events = []
    for k, step in enumerate(ONBOARDING_STEPS):
        if k and rnd.random() >= chances[k - 1]:
            break
        if k:
            ts = min(ts + 60_000 + int(rnd.random() * 1_200_000), day_end_ms)
        event = {key: first[key] for key in ("schema_version", "user_id", "channel", "platform")}
        event |= {"event_id": f"{first['event_id']}-onb{k}", "event_type": step, "timestamp": ts}
        events.append(event | {"session_id": first["session_id"]})
    return events
