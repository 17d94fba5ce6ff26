"""The worker's side of the live model without a broker: what it does with the topic's records."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from prometheus_client import CollectorRegistry

from agents.logic.churn import ModelParams
from agents.logic.engine import Engine
from agents.logic.fit import FitResult
from agents.logic.model import PARAMS_KEY, encode_params, encode_rows, rows_key
from streams.settings import Settings
from streams.worker.model_metrics import ModelMetrics
from streams.worker.model_sync import ModelSync
from tests.unit.conftest import T0, engine_config, make_event


def sync_for(**env: str) -> tuple[ModelSync, Engine, CollectorRegistry]:
    engine = Engine(engine_config(threshold=0.5))
    engine.assign(0, {})
    engine.process(0, [make_event("u", T0)], 0, T0)
    runtime = SimpleNamespace(engine=engine, failure=None, ready=asyncio.Event())
    registry = CollectorRegistry()
    settings = Settings.from_env(env)
    return ModelSync(settings, runtime, ModelMetrics(registry)), engine, registry  # type: ignore[arg-type]


def test_rows_are_kept_per_partition_and_params_switch_the_engine() -> None:
    sync, engine, registry = sync_for()
    assert registry.get_sample_value("engagement_model_parameter", {"name": "b"}) == 3.0
    sync._apply(rows_key(3), encode_rows(3, T0, {(1, 2, 5): 4}))
    assert sync.rows == {3: {(1, 2, 5): 4}}
    new = ModelParams(r=2.0, alpha=9.0, a=0.4, b=3.4)
    sync._apply(PARAMS_KEY, encode_params(FitResult(new, -123.5, 5000, True, "ok"), T0))
    assert engine.config.lifecycle.params == new and sync.fitted
    assert registry.get_sample_value("engagement_model_parameter", {"name": "alpha"}) == 9.0
    assert registry.get_sample_value("engagement_model_fit_users") == 5000
    assert registry.get_sample_value("engagement_model_fit_log_likelihood") == -123.5
    assert registry.get_sample_value("engagement_model_fit_timestamp_seconds") == T0 / 1000
    assert registry.get_sample_value("engagement_model_churn_risk_off") == 0


def test_params_that_put_the_threshold_too_high_switch_churn_risk_off() -> None:
    sync, engine, registry = sync_for()
    high = ModelParams(r=2.0, alpha=9.0, a=3.0, b=1.0)  # b/(a+b) = 0.25 <= 0.5
    sync._apply(PARAMS_KEY, encode_params(FitResult(high, -1.0, 5000, True, "ok"), T0))
    assert not engine.config.lifecycle.risk_on
    assert registry.get_sample_value("engagement_model_churn_risk_off") == 1


def test_a_record_it_cannot_read_is_logged_and_left() -> None:
    sync, engine, _ = sync_for()
    before = engine.config
    sync._apply(PARAMS_KEY, b"{}")
    sync._apply(rows_key(0), b"not json")
    sync._apply(PARAMS_KEY, None)
    assert engine.config == before and sync.rows == {} and not sync.fitted


def test_a_parameters_file_or_off_disables_the_sync() -> None:
    assert not sync_for(ENGAGEMENT_MODEL_REFIT="off")[0].enabled
    assert sync_for()[0].enabled
