"""The activity agent through Faust's test_context: batch in, state + changelog + signals out."""

from __future__ import annotations

import asyncio

import orjson

from agents.logic.days import DAY_MS
from schemas.records import Event
from streams.worker.codecs import encode_batch
from streams.worker.web import describe_user
from tests.agents.conftest import MemorySink, make_worker

T0 = 1_767_225_600_000


def run(coro):
    return asyncio.run(coro)


def test_a_batch_record_is_folded_and_made_durable(sink: MemorySink) -> None:
    worker = make_worker(sink)
    events = [Event(f"e{i}", f"user-{i % 3}", "page_view", T0 + i * 1000) for i in range(9)]

    async def scenario() -> None:
        async with worker.activity.test_context() as agent:
            await agent.put(encode_batch(0, events), key=b"user-0", partition=0)
        await worker.runtime.finish_groups()  # what the next tick does

    run(scenario())
    state = worker.runtime.engine.user("user-1")
    assert state is not None and state.active_days() == 1
    changelog = sink.records["agents-test-users-changelog"]
    assert {key for key, _, _, _ in changelog} >= {b"user-0", b"user-1", b"user-2"}
    assert sink.flushes[-1] == "changelog"
    assert worker.metrics.folded._value.get() == 9


def test_a_lapsed_user_returning_emits_one_reactivated_signal(sink: MemorySink) -> None:
    worker = make_worker(sink)
    first = [Event("a", "u", "page_view", T0)]
    silence = [Event("tick", "clock", "page_view", T0 + 40 * DAY_MS)]  # moves the event clock
    back = [Event("b", "u", "page_view", T0 + 41 * DAY_MS)]

    async def scenario() -> None:
        async with worker.activity.test_context() as agent:
            for batch in (first, silence, back, back):
                await agent.put(encode_batch(0, batch), key=b"u", partition=0)
        await worker.runtime.finish_groups()

    run(scenario())
    signals = [
        orjson.loads(v or b"{}")
        for topic, recs in sink.records.items()
        if ".signals." in topic
        for _, v, _, _ in recs
    ]
    kinds = [signal["kind"] for signal in signals if signal["user_id"] == "u"]
    assert kinds.count("reactivated") == 1
    assert "dormant" in kinds and "churned" in kinds
    assert sink.flushes.index("signals") < len(sink.flushes) - 1  # signals flushed before changelog
    for kind in {signal["kind"] for signal in signals}:  # counted per kind, once per group
        emitted = worker.metrics.signals.labels(kind)._value.get()
        assert emitted == sum(signal["kind"] == kind for signal in signals), kind


def test_a_malformed_batch_is_skipped_and_the_stream_goes_on(sink: MemorySink) -> None:
    worker = make_worker(sink)

    async def scenario() -> None:
        async with worker.activity.test_context() as agent:
            await agent.put(b'{"v": 99}', key=b"x", partition=0)
            await agent.put(
                encode_batch(0, [Event("ok", "good", "page_view", T0)]), key=b"good", partition=0
            )

    run(scenario())
    assert worker.runtime.engine.user("good") is not None


def test_the_store_gets_a_state_only_after_its_changelog_is_delivered(sink: MemorySink) -> None:
    worker = make_worker(sink)
    store: dict[bytes, bytes] = {}
    worker.runtime.engine.revoke(0)
    worker.runtime.engine.assign(0, store)
    events = [Event("e1", "u1", "page_view", T0)]
    engine = worker.runtime.engine
    engine.process(0, events, 0)
    assert b"u1" not in store  # pending: readable, not yet in the local store
    assert engine.user("u1") is not None

    async def commit() -> None:
        await worker.runtime.finish_groups()

    run(commit())
    assert b"u1" in store
    topic = "agents-test-users-changelog"
    assert (b"u1", store[b"u1"]) in [(k, v) for k, v, _, _ in sink.records[topic]]


def test_a_user_stuck_in_a_funnel_gets_one_stalled_signal_on_its_topic(sink: MemorySink) -> None:
    funnel = '[{"name": "onboard", "steps": ["session_start", "purchase"], "window": "2d"}]'
    worker = make_worker(sink, ENGAGEMENT_FUNNELS=funnel)
    entered = [Event("a", "stuck", "session_start", T0), Event("b", "done", "session_start", T0)]
    bought = [Event("c", "done", "purchase", T0 + DAY_MS)]
    later = [Event("tick", "clock", "page_view", T0 + 3 * DAY_MS)]  # moves the event clock

    async def scenario() -> None:
        async with worker.activity.test_context() as agent:
            for batch in (entered, bought, later, later):
                await agent.put(encode_batch(0, batch), key=batch[0].user_id.encode(), partition=0)
        await worker.runtime.finish_groups()

    run(scenario())
    stalled = [
        orjson.loads(v or b"{}") for _, v, _, _ in sink.records["engagement.signals.stalled"]
    ]
    assert [(s["user_id"], s["event_time_ms"]) for s in stalled] == [("stuck", T0 + 2 * DAY_MS)]
    assert stalled[0]["reasons"]["funnel"]["next_step_event"] == "purchase"
    stuck = describe_user(worker.runtime, "stuck")
    assert stuck is not None
    assert stuck["funnels"] == [
        {
            "funnel": "onboard",
            "steps_reached": [
                {"step": 1, "event": "session_start", "at": "2026-01-01T00:00:00.000Z"}
            ],
            "converted": False,
            "window_ends": "2026-01-03T00:00:00.000Z",
            "stalled": True,
        }
    ]
    done = describe_user(worker.runtime, "done")
    assert done is not None and done["funnels"][0]["converted"] is True
    worker.runtime.refresh_snapshot()
    labels = {"funnel": "onboard", "event": "session_start", "channel": "other"}
    labels |= {"cohort": "2025-12-29", "step": "1"}  # T0 is a Thursday
    assert worker.registry.get_sample_value("engagement_funnel_reached_users", labels) == 2
    assert worker.registry.get_sample_value("engagement_funnel_converted_users", labels) == 1
    within_a_day = {"funnel": "onboard", "event": "session_start", "step": "1", "le": "86400.0"}
    assert (
        worker.registry.get_sample_value("engagement_funnel_step_time_seconds_bucket", within_a_day)
        == 1
    )


def test_a_return_read_before_the_clock_passed_its_deadline_is_shown_deferred_and_counted(
    sink: MemorySink,
) -> None:
    """u is silent 7 days, then back; the clock (watermark an hour behind the newest event)
    has not passed the dormant deadline: /users/{id} lists the return as deferred, and DAU
    counts u on that day already."""
    worker = make_worker(sink)
    noon = T0 + DAY_MS // 2
    back_ms = noon + 7 * DAY_MS + 30 * 60_000
    batches = [[Event("a", "u", "page_view", noon)], [Event("b", "u", "page_view", back_ms)]]

    async def scenario() -> None:
        async with worker.activity.test_context() as agent:
            for batch in batches:
                await agent.put(encode_batch(0, batch), key=b"u", partition=0)
        await worker.runtime.finish_groups()

    run(scenario())
    user = describe_user(worker.runtime, "u")
    assert user is not None
    assert user["deferred_events"] == ["2026-01-08T12:30:00.000Z"]
    assert user["last_active_day"] == "2026-01-01" and user["next_deadline_kind"] == "dormant"
    worker.runtime.refresh_snapshot()
    assert worker.registry.get_sample_value("engagement_active_users", {"window": "1d"}) == 1
