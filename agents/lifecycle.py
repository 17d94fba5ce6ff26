"""lifecycle: user state -> ``signals.{dormant,churn_risk,churned,reactivated}`` on deadlines.

Thin: a timer asks the runtime to fire what the deadline index says is due (work proportional
to the users due); returns are decided in the activity stage as events arrive.
"""

from __future__ import annotations

from typing import Any

import faust

from streams.worker.runtime import Runtime


def register(app: faust.App, runtime: Runtime) -> Any:
    @app.timer(runtime.settings.tick_interval, name="lifecycle_deadlines")  # type: ignore[untyped-decorator]
    async def deadlines() -> None:
        if runtime.ready.is_set():
            await runtime.tick()

    return deadlines
