"""The worker's HTTP API on its web port: /metrics, /healthz, /readyz, /users/{user_id}."""

from __future__ import annotations

import functools
import hmac
import time
from collections.abc import Awaitable, Callable
from typing import Any

import faust
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from agents.logic.churn import p_alive
from agents.logic.days import DAY_MS
from agents.logic.lifecycle import model_inputs, risk_deadline_ms
from schemas.timestamps import iso_ms
from streams.worker.runtime import Runtime
from streams.worker.store import StateTable


def register(
    app: faust.App, table: StateTable, runtime: Runtime, registry: CollectorRegistry
) -> None:
    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        return web.bytes(generate_latest(registry), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        return web.json({"status": "ok"})

    @app.page("/readyz")
    async def readyz(web: Any, request: Any) -> Any:
        """200 while partitions are taken over and groups of changes reach Kafka; 503 while
        recovering, rebalancing, stopping, or when a group is stuck (commits not moving)."""
        ready, why = runtime.readiness()
        if ready and app.rebalancing:
            ready, why = False, "rebalancing"
        answer = {"ready": ready, "partitions": sorted(runtime.engine.partitions)}
        if why:
            answer["reason"] = why
        return web.json(answer, status=200 if ready else 503)

    @app.page("/users/{user_id}")
    @require_token(runtime.settings.api_token)
    @app.table_route(table=table, match_info="user_id")
    async def user(web: Any, request: Any, user_id: str) -> Any:
        answer = describe_user(runtime, user_id)
        if answer is None:
            return web.json({"error": "unknown user"}, status=404)
        return web.json(answer)


Handler = Callable[..., Awaitable[Any]]


def require_token(token: str) -> Callable[[Handler], Handler]:
    """ENGAGEMENT_API_TOKEN: without ``Authorization: Bearer <token>`` answer 401 (checked
    before routing; faust forwards the header to the owning worker, which checks it too)."""

    def decorate(fun: Handler) -> Handler:
        if not token:
            return fun
        expected = f"Bearer {token}".encode()

        @functools.wraps(fun)
        async def checked(view: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
            given = str(request.headers.get("Authorization", "")).encode()
            if not hmac.compare_digest(given, expected):
                return view.json(
                    {"error": "unauthorized"},
                    status=401,
                    headers={"WWW-Authenticate": 'Bearer realm="engagement"'},
                )
            return await fun(view, request, *args, **kwargs)

        return checked

    return decorate


def describe_user(runtime: Runtime, user_id: str) -> dict[str, Any] | None:
    """What ``GET /users/{id}`` answers for a user this worker owns."""
    state = runtime.engine.user(user_id)
    if state is None:
        return None
    config = runtime.engine.config
    calendar = config.calendar
    now = runtime.engine.now_ms(int(time.time() * 1000))
    x, t_x, origin = model_inputs(state, calendar)
    T = max(float(t_x), (now - origin) / DAY_MS)
    return {
        "user_id": user_id,
        "stage": state.stage.label,
        "stage_since": iso_ms(state.stage_since_ms),
        "channel": config.signals.channels[state.channel],
        "first_active_day": calendar.iso(calendar.day_of(state.first_ms)),
        "last_active_day": calendar.iso(state.last_day),
        "last_event_time": iso_ms(state.last_ms),
        "active_days": state.active_days(),
        "p_alive": round(p_alive(x, float(t_x), T, config.lifecycle.params), 6),
        "churn_risk_at": iso_ms(risk_deadline_ms(state, config.lifecycle)),
        "next_deadline": iso_ms(state.deadline_ms) if state.deadline_ms else None,
        "next_deadline_kind": state.deadline.name.lower(),
        "clock": config.clock,
    }
