"""The live model in the worker: rows out, parameters in, refits on the owner of partition 0.

Every ``ENGAGEMENT_MODEL_REFIT`` (every minute at most until a first fit is accepted) each
worker publishes the whole-day (x, t_x, T) rows of the partitions it owns to the compacted
``<prefix>.model`` topic, keyed ``rows/<partition>``. The worker that owns by_user partition 0
merges the newest rows of every partition and fits them off the event loop; a fit that passes
the guards (:func:`agents.logic.model.judge`) is published keyed ``params``. Every worker reads
the whole topic (one partition, no consumer group) and switches to new parameters as it reads
them, re-arming its live users' deadlines; a restarted worker reads the last ones back. See
:mod:`agents.logic.model` for the pure parts.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from typing import Any

from agents.logic.calibration import calibrate
from agents.logic.churn import ModelParams, threshold_problem
from agents.logic.model import (
    PARAMS_KEY,
    ROWS_PREFIX,
    Rows,
    apply_params,
    decode_params,
    decode_rows,
    encode_params,
    encode_rows,
    engine_outcomes,
    engine_rows,
    judge,
    merge_rows,
    rows_key,
)
from agents.logic.risk_returns import RiskReturns
from streams.kafka import consumer_config, producer_config
from streams.settings import Settings
from streams.topics import Topics
from streams.worker.model_metrics import ModelMetrics
from streams.worker.runtime import Runtime

log = logging.getLogger(__name__)
FIRST_FIT_RETRY_S = 60.0  # until a fit is accepted, rows and refits at least this often
STEP_S = 1.0  # how often the timer reads the topic


class ModelSync:
    """One worker's side of the live model."""

    def __init__(self, settings: Settings, runtime: Runtime, metrics: ModelMetrics) -> None:
        self.settings = settings
        self.runtime = runtime
        self.metrics = metrics
        self.topic = Topics.of(settings).model
        self.enabled = settings.model_refit > 0 and not settings.model_file
        self.rows: dict[int, Rows] = {}  # partition -> its newest published rows
        self.fitted = False  # parameters from a refit are in use
        self._next_rows = 0.0
        self._next_fit = 0.0
        self._fitting: asyncio.Task[None] | None = None
        self._consumer: Any = None
        self._producer: Any = None
        self._show(runtime.engine.config.lifecycle.params, {})

    def _period(self) -> float:
        interval = self.settings.model_refit
        return interval if self.fitted else min(interval, FIRST_FIT_RETRY_S)

    async def step(self) -> None:
        """Read what is new on the topic; publish rows and refit when due."""
        if not self.enabled or self.runtime.failure is not None:
            return
        self._read()
        if not self.runtime.ready.is_set():
            return
        now = time.monotonic()
        if now >= self._next_rows:
            self._next_rows = now + self._period()
            await self._publish_rows()
        owner = 0 in self.runtime.engine.partitions
        if owner and now >= self._next_fit and self._fitting is None:
            self._next_fit = now + self._period()
            self._fitting = asyncio.get_running_loop().create_task(self._refit())

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
        if self._producer is not None:
            self._producer.flush(5)

    # -- reading -------------------------------------------------------------------------------
    def _read(self) -> None:
        if self._consumer is None:
            self._consumer = self._open_consumer()
        while True:
            messages = self._consumer.consume(num_messages=1000, timeout=0)
            if not messages:
                return
            for message in messages:
                if message.error() is not None:  # the client retries; say so, never in silence
                    log.warning("model topic: %s", message.error())
                    continue
                self._apply(message.key() or b"", message.value())

    def _open_consumer(self) -> Any:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        group = f"{self.settings.app_id}-model-{uuid.uuid4().hex[:8]}"  # never joins: assign
        consumer = Consumer(consumer_config(self.settings, group))
        consumer.assign([TopicPartition(self.topic, 0, OFFSET_BEGINNING)])
        return consumer

    def _apply(self, key: bytes, value: bytes | None) -> None:
        if value is None:
            return
        try:
            if key.startswith(ROWS_PREFIX):
                partition, _, rows = decode_rows(value)
                self.rows[partition] = rows
            elif key == PARAMS_KEY:
                self._use(*decode_params(value))
        except ValueError as exc:
            log.warning("model topic: record %r not used: %s", key, exc)

    def _use(self, params: ModelParams, fit: dict[str, float]) -> None:
        self.fitted = True
        if params == self.runtime.engine.config.lifecycle.params:
            return
        started = time.monotonic()
        moved, problem = apply_params(self.runtime.engine, params)
        log.info(
            "model parameters r=%.4g alpha=%.4g a=%.4g b=%.4g (fit on %d users) in use: %d "
            "deadline(s) re-armed in %.2fs",
            *(params.r, params.alpha, params.a, params.b),
            int(fit.get("n_users", 0)),
            moved,
            time.monotonic() - started,
        )
        if problem:
            log.warning("churn_risk signal off: ENGAGEMENT_ALIVE_THRESHOLD %s", problem)
        self._show(params, fit)

    def _show(self, params: ModelParams, fit: dict[str, float]) -> None:
        self.metrics.show((params.r, params.alpha, params.a, params.b), fit)
        off = threshold_problem(params, self.settings.alive_threshold) is not None
        self.metrics.risk_off.set(1 if off else 0)

    # -- writing -------------------------------------------------------------------------------
    async def _produce(self, records: list[tuple[bytes, bytes]]) -> None:
        if self._producer is None:
            from confluent_kafka import Producer

            self._producer = Producer(producer_config(self.settings))
        for key, value in records:
            self._producer.produce(self.topic, key=key, value=value, partition=0)
        left = await asyncio.to_thread(self._producer.flush, self.settings.durable_timeout)
        if left:
            raise TimeoutError(f"{left} model record(s) not delivered")

    async def _publish_rows(self) -> None:
        wall = int(time.time() * 1000)
        rows = engine_rows(self.runtime.engine, wall)
        records = [(rows_key(n), encode_rows(n, at, r)) for n, (at, r) in sorted(rows.items())]
        risk = RiskReturns()
        outcomes = engine_outcomes(self.runtime.engine, wall, risk=risk)
        try:
            await self._produce(records)
            params = self.runtime.engine.config.lifecycle.params
            self.metrics.show_calibration(await asyncio.to_thread(calibrate, outcomes, params))
            self.metrics.show_risk_returns(risk)
        except Exception as exc:  # the next period tries again; the signals do not wait
            log.warning("model rows or calibration not published: %r", exc)

    async def _refit(self) -> None:
        try:
            await self._refit_once()
        except Exception as exc:
            self.metrics.refits.labels("failed").inc()
            log.warning("model refit failed: %r", exc)
        finally:
            self._fitting = None

    async def _refit_once(self) -> None:
        missing = set(range(self.settings.partitions)) - set(self.rows)
        if missing:
            log.info("model refit waits for the rows of partitions %s", sorted(missing))
            return
        merged = merge_rows(self.rows.values())
        users = sum(merged.values())
        if users < self.settings.model_refit_min_users:
            log.info("model refit waits: %d users, fewer than %d", users, self.min_users)
            return
        from agents.logic.fit import fit_rows  # numpy and scipy: the fit extra

        current = self.runtime.engine.config.lifecycle.params
        started = time.monotonic()
        result = await asyncio.to_thread(fit_rows, merged, current)
        problem = judge(result, self.min_users)
        if problem:
            self.metrics.refits.labels("rejected").inc()
            log.warning("model refit not used (%s); the parameters in use stay", problem)
            return
        if _same(result.params, current):  # nothing learnt: keep the fit (and deadlines) as is
            log.info("model refit on %d users gave the parameters in use again", users)
            return
        await self._produce([(PARAMS_KEY, encode_params(result, int(time.time() * 1000)))])
        self.metrics.refits.labels("accepted").inc()
        log.info(
            "model refit on %d users (%d rows) in %.1fs published",
            users,
            len(merged),
            time.monotonic() - started,
        )

    @property
    def min_users(self) -> int:
        return self.settings.model_refit_min_users


def _same(new: ModelParams, current: ModelParams, rel: float = 1e-4) -> bool:
    """Equal up to the optimiser's noise (a refit of unchanged rows starts from the current
    parameters and stops a little elsewhere each time)."""
    pairs = ((new.r, current.r), (new.alpha, current.alpha), (new.a, current.a), (new.b, current.b))
    return all(math.isclose(x, y, rel_tol=rel) for x, y in pairs)
