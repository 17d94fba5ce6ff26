"""The worker's HTTP API on its web port: /metrics, /healthz, /readyz, /users/{user_id}.

Faust's own views that show table contents, routing or internals (``/table``, ``/router``,
the statistics and graph pages) are switched off in :func:`streams.worker.app.faust_app`.
``/users/{id}`` for a user another worker owns is forwarded by :func:`forward`, not by
Faust's ``table_route``: only to the owner's URL as the consumer group's assignment gives it
(never a host, port or scheme taken from the request), with this worker's own token, without
following redirects, and at most one hop.
"""

from __future__ import annotations

import functools
import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

import aiohttp
import faust
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from yarl import URL

from agents.logic.churn import p_alive
from agents.logic.days import DAY_MS
from agents.logic.funnels import progress_of
from agents.logic.lifecycle import model_inputs, risk_deadline_ms
from agents.logic.partitioning import partition_for
from schemas.records import ARMS, SIGNAL_KINDS
from schemas.timestamps import iso_ms
from streams.worker.runtime import Runtime
from streams.worker.store import StateTable

log = logging.getLogger(__name__)
FORWARDED = "X-Engagement-Forwarded"  # set on a forwarded request: it is answered, not sent on
FORWARD_TIMEOUT_S = 10.0


def register(
    app: faust.App, table: StateTable, runtime: Runtime, registry: CollectorRegistry
) -> None:
    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        """Every metric; with ``name[]`` parameters only the samples of those names, as
        prometheus_client's own exposition does (a poller that reads a few counters often, like
        the bench, then costs the worker little: the whole page renders every gauge)."""
        names = request.query.getall("name[]", [])
        source = registry.restricted_registry(names) if names else registry
        return web.bytes(generate_latest(source), content_type=CONTENT_TYPE_LATEST.split(";")[0])

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

    token = runtime.settings.api_token

    @app.page("/users/{user_id}")
    @require_token(token)
    async def user(web: Any, request: Any, user_id: str) -> Any:
        try:
            owner = owner_url(app, table, user_id)
        except KeyError:  # no assignment yet (starting, or the group is rebalancing)
            return unavailable(web, "partition not assigned yet")
        if owner is not None:
            if request.headers.get(FORWARDED):  # the owners disagree mid-rebalance: no loop
                return unavailable(web, "partition moving between workers")
            return await forward(app, web, owner, user_id, token)
        answer = describe_user(runtime, user_id)
        if answer is None:
            return web.json({"error": "unknown user"}, status=404)
        return web.json(answer)


Handler = Callable[..., Awaitable[Any]]


def owner_url(app: faust.App, table: StateTable, user_id: str) -> URL | None:
    """The web URL of the group member that owns ``user_id``'s partition (as it advertised it
    in the group), or None when that is this worker; KeyError while no member owns it.

    The partition is murmur2 of the user id, as ingest keys ``events.by_user`` (the changelog
    is co-partitioned); Faust's ``key_store`` would ask its producer's metadata, which knows
    only topics Faust declared itself."""
    partition = partition_for(user_id.encode(), table.partitions or 1)
    topic = table.changelog_topic_name
    for url, topics in app.router.table_metadata(table.name).items():
        if partition in topics.get(topic, ()):
            owner = URL(str(url))
            return None if same_server(owner, URL(str(app.conf.canonical_url))) else owner
    raise KeyError(partition)


def same_server(a: URL, b: URL) -> bool:
    return (a.host, a.port) == (b.host, b.port)


def forward_url(owner: URL, user_id: str) -> URL:
    """``/users/{user_id}`` on ``owner``: its scheme, host and port only (no query; the id
    quoted whole, so it stays one path segment)."""
    path = "/users/" + quote(user_id, safe="")
    return owner.with_user(None).with_path(path, encoded=True).with_query(None).with_fragment(None)


async def forward(app: faust.App, web: Any, owner: URL, user_id: str, token: str) -> Any:
    """Ask the owner for ``user_id`` and relay its answer (503 when it cannot be reached)."""
    headers = {FORWARDED: "1", "Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        async with app.http_client.get(
            forward_url(owner, user_id),
            headers=headers,
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=FORWARD_TIMEOUT_S),
        ) as answer:
            body = await answer.read()
            return web.bytes(body, content_type=answer.content_type, status=answer.status)
    except (aiohttp.ClientError, TimeoutError) as exc:
        where = owner.with_user(None).with_path("")
        log.warning("/users: owner %s unreachable: %s", where, type(exc).__name__)
        return unavailable(web, "owner unreachable")


def unavailable(web: Any, why: str) -> Any:
    return web.json({"error": why}, status=503, headers={"Retry-After": "1"})


def require_token(token: str) -> Callable[[Handler], Handler]:
    """ENGAGEMENT_API_TOKEN: without ``Authorization: Bearer <token>`` answer 401 (checked
    before routing; a forwarded request carries this worker's token, checked there too)."""

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
        # read, counted in the gauges, waiting for the clock to pass next_deadline (event
        # order: the deadline's signal first, then the return)
        "deferred_events": [iso_ms(ms) for ms, _, _, _ in state.pending],
        "last_signals": [  # per kind: its arm (never act on holdout) and the return after it
            {
                "kind": SIGNAL_KINDS[kind],
                "arm": ARMS[arm] if arm < len(ARMS) else "not_delivered",
                "event_time": iso_ms(at),
                "returned_at": iso_ms(back) if back else None,
            }
            for kind, arm, _, at, back in state.marks
        ],
        "funnels": [  # ENGAGEMENT_FUNNELS entered: steps reached, converted, stalled
            {
                **{k: v for k, v in p.items() if k not in ("steps_reached", "window_ends_ms")},
                "steps_reached": [
                    {"step": s["step"], "event": s["event"], "at": iso_ms(s["at_ms"])}
                    for s in p["steps_reached"]
                ],
                "window_ends": iso_ms(p["window_ends_ms"]),
            }
            for p in progress_of(state.funnels, config.fold.funnels)
        ],
    }
