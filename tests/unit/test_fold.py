from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from agents.logic.days import DAY_MS
from agents.logic.fold import FoldConfig, _remember, fold, new_state
from agents.logic.state import UserState
from tests.unit.conftest import T0, make_event

HOUR = 3_600_000


def fold_all(events, config: FoldConfig) -> UserState:
    state = None
    for event in events:
        day = config.calendar.day_of(event.timestamp_ms)
        if state is None:
            state = new_state(event, day, config)
        else:
            fold(state, event, day, config)
    assert state is not None
    return state


def test_days_are_a_set_and_last_time_a_max(fold_config: FoldConfig) -> None:
    events = [
        make_event("u", T0 + 10 * HOUR),
        make_event("u", T0 + 2 * DAY_MS),
        make_event("u", T0 + 5 * HOUR),
        make_event("u", T0 + DAY_MS + HOUR),
    ]
    state = fold_all(events, fold_config)
    assert state.active_days() == 3
    assert state.last_ms == T0 + 2 * DAY_MS
    assert state.first_ms == T0 + 5 * HOUR


def test_duplicates_are_detected_and_change_nothing(fold_config: FoldConfig) -> None:
    state = fold_all([make_event("u", T0), make_event("u", T0 + DAY_MS)], fold_config)
    before = state.copy()
    assert fold(state, make_event("u", T0 + DAY_MS), 0, fold_config) is False
    assert state == before


def test_first_touch_channel_follows_the_earliest_event(fold_config: FoldConfig) -> None:
    late_first = [
        make_event("u", T0 + DAY_MS, channel="email"),
        make_event("u", T0, channel="organic"),
    ]
    assert fold_all(late_first, fold_config).channel == 1
    unknown = [make_event("u", T0, channel="tiktok")]
    assert fold_all(unknown, fold_config).channel == 0


def test_days_beyond_the_horizon_still_count_in_x(fold_config: FoldConfig) -> None:
    events = [make_event("u", T0), make_event("u", T0 + 200 * DAY_MS)]
    assert fold_all(events, fold_config).active_days() == 2
    assert fold_all(list(reversed(events)), fold_config).active_days() == 2


def test_categories_are_day_sets(fold_config: FoldConfig) -> None:
    events = [
        make_event("u", T0, event_type="purchase"),
        make_event("u", T0 + HOUR, event_type="purchase"),
        make_event("u", T0 + DAY_MS, event_type="share"),
    ]
    state = fold_all(events, fold_config)
    assert state.categories == [0b10, 0b01]


event_lists = st.lists(
    st.tuples(
        st.integers(0, 60 * DAY_MS),
        st.sampled_from(["page_view", "purchase", "share"]),
        st.sampled_from([None, "organic", "email", "tiktok"]),
    ),
    min_size=1,
    max_size=30,
)


@settings(max_examples=200, deadline=None)
@given(event_lists, st.randoms(use_true_random=False), st.integers(0, 5))
def test_duplicates_and_reordering_within_lateness_give_the_same_state(raw, rnd, n_dupes) -> None:
    config = FoldConfigCache.get()
    events = [make_event("u", T0 + ms, f"e{i}", etype, ch) for i, (ms, etype, ch) in enumerate(raw)]
    ordered = sorted(events, key=lambda e: e.timestamp_ms)
    # reorder only within the allowed lateness (1 hour): shuffle inside 1-hour buckets
    shuffled = sorted(ordered, key=lambda e: (e.timestamp_ms // HOUR, rnd.random()))
    with_dupes = shuffled + [rnd.choice(events) for _ in range(n_dupes)]
    rnd.shuffle(with_dupes[len(shuffled) :])
    assert fold_all(ordered, config) == fold_all(with_dupes, config)


class FoldConfigCache:
    _config: FoldConfig | None = None

    @classmethod
    def get(cls) -> FoldConfig:
        if cls._config is None:
            from agents.logic.days import Calendar
            from tests.unit.conftest import CATEGORIES, CHANNELS

            cls._config = FoldConfig.build(Calendar("UTC"), 120, CHANNELS, CATEGORIES)
        return cls._config


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 20), st.integers(0, 3)), max_size=40),
    st.integers(1, 6),
)
def test_the_recent_ids_are_the_newest_distinct_ones_seen(keys, keep) -> None:
    """Against a plain model: after each event the remembered ids are the ``keep`` newest
    distinct (ms, fingerprint) pairs seen so far, and an event is a duplicate exactly when
    its pair was remembered (in order, out of order, repeated)."""
    ms, fp = keys[0] if keys else (0, 0)
    state = UserState(first_ms=ms, last_ms=ms, last_day=0, recent=[(ms, fp)])
    seen = {(ms, fp)}
    for key in keys[1:]:
        remembered_before = sorted(seen, reverse=True)[:keep]
        assert _remember(state, key, keep) == (key not in remembered_before)
        seen.add(key)
        assert state.recent == sorted(seen, reverse=True)[:keep]
