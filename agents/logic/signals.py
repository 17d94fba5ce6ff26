"""Signal records: deterministic ids and the reasons a retention team acts on.

The JSON built here is exactly what ``schemas/signal.schema.json`` documents. ``signal_id`` is
derived from (user, kind, trigger), so a signal re-emitted after a crash or a replay carries the
same id and consumers can dedupe on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from hashlib import blake2b
from typing import Any, Final

from agents.logic.churn import expected_active_days, p_alive, usual_gap_of_bitmap
from agents.logic.days import DAY_MS
from agents.logic.decimals import round_to
from agents.logic.lifecycle import LifecycleConfig, Transition, model_inputs
from agents.logic.state import STAGE_LABELS, UserState
from schemas.records import ARMS, OTHER_CHANNEL, SIGNAL_KINDS, signal_dict

RECENT_WINDOW_DAYS: Final = 28


@dataclass(frozen=True, slots=True)
class SignalContext:
    """Names for the indexes kept in state, and which clock this worker runs on."""

    clock: str
    channels: Sequence[str]  # schemas.records.channel_labels: index 0 is "other"
    categories: Sequence[str]


_BLAKE2B_16: Final = blake2b(digest_size=16)


def signal_id(user_id: str, kind: str, trigger_ms: int, scope: str = "") -> str:
    """Same user, same kind, same trigger -> same id (32 hex digits). ``scope`` tells apart
    signals of one kind with the same trigger (a ``stalled`` signal's funnel name)."""
    text = f"{user_id}\x1f{kind}\x1f{trigger_ms}" + (f"\x1f{scope}" if scope else "")
    hashed = _BLAKE2B_16.copy()  # a copy skips the constructor's keyword parsing and set-up
    hashed.update(text.encode())
    return hashed.hexdigest()


def category_declines(state: UserState, names: Sequence[str], horizon: int) -> list[dict[str, Any]]:
    """Per category: active days per week in the last 4 weeks of activity against the weeks
    before (the user's own baseline). Only categories with a baseline are reported."""
    recent_mask = (1 << RECENT_WINDOW_DAYS) - 1
    baseline_weeks = (horizon - RECENT_WINDOW_DAYS) / 7
    result = []
    kept = state.categories
    # by index: compiled, zip(..., strict=False) is a generic call (its keyword), 2,600
    # instructions a signal
    for i in range(min(len(names), len(kept))):
        bits = kept[i]
        baseline = (bits >> RECENT_WINDOW_DAYS).bit_count() / baseline_weeks
        if baseline <= 0:
            continue
        recent = (bits & recent_mask).bit_count() / (RECENT_WINDOW_DAYS / 7)
        result.append(
            {
                "category": names[i],
                "baseline_days_per_week": round_to(baseline, 4),
                "recent_days_per_week": round_to(recent, 4),
                "decline": round_to(max(0.0, 1 - recent / baseline), 4),
            }
        )
    return result


def reasons(
    state: UserState,
    transition: Transition,
    config: LifecycleConfig,
    categories: Sequence[str],
    horizon: int,
) -> dict[str, Any]:
    """Why the signal fired, measured at the moment it became true."""
    x, t_x, origin = model_inputs(state, config.calendar)
    T = max(float(t_x), (transition.at_ms - origin) / DAY_MS)
    inactive_ms = transition.at_ms - transition.last_ms_before
    alive = p_alive(x, float(t_x), T, config.params)
    expected = expected_active_days(x, float(t_x), T, config.params, alive=alive)
    out: dict[str, Any] = {
        "days_inactive": round_to(inactive_ms / DAY_MS, 4),
        "usual_gap_days": usual_gap_of_bitmap(state.days),
        "p_alive": round_to(alive, 6),
        "expected_active_days_7d": round_to(expected, 4),
        "active_days": x + 1,
        "category_declines": category_declines(state, categories, horizon),
    }
    if transition.kind == "reactivated":
        out["days_dormant"] = out["days_inactive"]
    if transition.funnel is not None:
        out["funnel"] = dict(transition.funnel)
    return out


def build_signal(
    user_id: str,
    state: UserState,
    transition: Transition,
    *,
    config: LifecycleConfig,
    context: SignalContext,
    horizon: int,
    processed_ms: int,
) -> dict[str, Any]:
    """The signal JSON object for ``transition``."""
    return signal_dict(
        signal_id=signal_id(
            user_id,
            transition.kind,
            transition.trigger_ms,
            transition.funnel["name"] if transition.funnel else "",
        ),
        kind=transition.kind,
        user_id=user_id,
        stage_before=STAGE_LABELS[transition.before],
        stage_after=STAGE_LABELS[transition.after],
        event_time_ms=transition.at_ms,
        processed_at_ms=processed_ms,
        clock=context.clock,
        trigger="activity" if transition.kind == "reactivated" else "deadline",
        channel=context.channels[state.channel]
        if state.channel < len(context.channels)
        else OTHER_CHANNEL,
        reasons=reasons(state, transition, config, context.categories, horizon),
        arm=arm_at(state, transition.kind),
    )


def arm_at(state: UserState, kind: str) -> str:
    """The arm the walk marked the user's signal of ``kind`` with (treatment if unmarked)."""
    index = SIGNAL_KINDS.index(kind)
    arm = next((m[1] for m in state.marks if m[0] == index), 0)
    return ARMS[arm] if arm < len(ARMS) else ARMS[0]
