"""lifecycle: user state -> ``signals.{dormant,churn_risk,churned,reactivated}`` on deadlines.

Thin: a timer asks the runtime to fire what the deadline index says is due (work proportional
to the users due); returns are decided in the activity stage as events arrive. A second timer
refreshes the snapshot the metrics collector reads, so scrapes never scan state.
"""

from __future__ import annotations

from typing import Any

import faust

from streams.worker.runtime import Runtime

SNAPSHOT_EVERY_S = 1.0


def register(app: faust.App, runtime: Runtime) -> tuple[Any, Any]:
    @app.timer(runtime.settings.tick_interval, name="lifecycle_deadlines")  # type: ignore[untyped-decorator]
    async def deadlines() -> None:
        if runtime.ready.is_set():
            await runtime.tick()

    @app.timer(SNAPSHOT_EVERY_S, name="lifecycle_snapshot")  # type: ignore[untyped-decorator]
    async def snapshot() -> None:
        runtime.refresh_snapshot()

    @app.task  # type: ignore[untyped-decorator]
    async def start_flusher() -> None:
        runtime.start_flusher(runtime.settings.tick_interval)

    app.on_before_shutdown.connect(runtime.stop_flusher)

    return deadlines, snapshot
