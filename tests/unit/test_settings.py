from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from schemas.errors import SettingsError
from streams.setting_values import parse_duration
from streams.settings import Settings, describe
from streams.topics import Topics

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_need_no_environment() -> None:
    settings = Settings.from_env({})
    assert settings.input_topic == "user.events"
    assert settings.web_port == 6066
    assert settings.clock == "wall"
    assert settings.dormant_after == 7 * 86400
    assert Topics.of(settings).dead_letter == "engagement.dead_letter"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("ENGAGEMENT_BROKER", "localhost:9092"),
        ("ENGAGEMENT_WEB_PORT", "seventy"),
        ("ENGAGEMENT_WEB_PORT", "70000"),
        ("ENGAGEMENT_STORE", "redis://"),
        ("ENGAGEMENT_TIMEZONE", "Mars/Olympus"),
        ("ENGAGEMENT_CLOCK", "lunar"),
        ("ENGAGEMENT_ALLOWED_LATENESS", "2d"),
        ("ENGAGEMENT_ALIVE_THRESHOLD", "1.5"),
        ("ENGAGEMENT_CHANNELS", "Organic"),
        ("ENGAGEMENT_CATEGORIES", "purchase"),
        ("ENGAGEMENT_HORIZON_DAYS", "30"),
        ("ENGAGEMENT_CHURNED_AFTER", "3d"),
        ("ENGAGEMENT_INPUT_KEYED_BY_USER", "maybe"),
        ("ENGAGEMENT_REPLICATION_FACTOR", "0"),
        ("ENGAGEMENT_REPLICATION_FACTOR", "-2"),
        ("ENGAGEMENT_MIN_INSYNC_REPLICAS", "0"),
    ],
)
def test_a_bad_value_names_its_variable(variable: str, value: str) -> None:
    with pytest.raises(SettingsError) as info:
        Settings.from_env({variable: value})
    assert variable in str(info.value)
    assert info.value.variable == variable


SECRETS = {
    "ENGAGEMENT_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
    "ENGAGEMENT_SASL_USERNAME": "alice",
    "ENGAGEMENT_SASL_PASSWORD": "pw-9f3c1b",
    "ENGAGEMENT_API_TOKEN": "tok-77e2a0",
}


def test_repr_str_and_masked_hide_every_secret() -> None:
    settings = Settings.from_env(SECRETS)
    secret_fields = [f for f in dataclasses.fields(Settings) if f.metadata["secret"]]
    assert {f.metadata["env"] for f in secret_fields} >= {
        "ENGAGEMENT_SASL_PASSWORD",
        "ENGAGEMENT_API_TOKEN",
    }
    assert set(settings.secrets()) == {"pw-9f3c1b", "tok-77e2a0"}
    for text in (repr(settings), str(settings), f"{settings}", str(settings.masked())):
        assert "pw-9f3c1b" not in text and "tok-77e2a0" not in text, text
    assert "sasl_password='***'" in repr(settings) and "api_token='***'" in repr(settings)
    assert "sasl_username='alice'" in repr(settings)  # only secrets are masked
    assert settings.masked()["ENGAGEMENT_API_TOKEN"] == "***"
    assert "api_token=''" in repr(Settings.from_env({}))  # unset: nothing to hide


def test_replication_defaults_to_the_brokers_and_is_checked() -> None:
    settings = Settings.from_env({})
    assert (settings.replication_factor, settings.min_insync_replicas) == (-1, -1)
    both = {"ENGAGEMENT_REPLICATION_FACTOR": "3", "ENGAGEMENT_MIN_INSYNC_REPLICAS": "2"}
    assert Settings.from_env(both).min_insync_replicas == 2
    with pytest.raises(SettingsError) as info:
        Settings.from_env({**both, "ENGAGEMENT_MIN_INSYNC_REPLICAS": "4"})
    assert info.value.variable == "ENGAGEMENT_MIN_INSYNC_REPLICAS"


def test_values_are_parsed() -> None:
    settings = Settings.from_env(
        {
            "ENGAGEMENT_BROKER": "kafka://a:9092, kafka://b:9093",
            "ENGAGEMENT_DORMANT_AFTER": "36h",
            "ENGAGEMENT_RETENTION_DAYS": "7,1",
            "ENGAGEMENT_CATEGORIES": "buy=purchase|checkout",
        }
    )
    assert settings.broker == ("kafka://a:9092", "kafka://b:9093")
    assert settings.dormant_after == 36 * 3600
    assert settings.retention_days == (1, 7)
    assert settings.categories == (("buy", ("purchase", "checkout")),)


def test_settings_round_trip_through_the_environment() -> None:
    settings = Settings.from_env({"ENGAGEMENT_CLOCK": "event", "ENGAGEMENT_PARTITIONS": "12"})
    assert Settings.from_env(settings.as_env()) == settings


def test_settings_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Settings.from_env({}).clock = "event"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "seconds"), [("250ms", 0.25), ("90", 90), ("15m", 900), ("7d", 604800)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_readme_documents_every_setting_with_its_default() -> None:
    readme = (ROOT / "README.md").read_text()
    rows = dict(re.findall(r"^\| `(ENGAGEMENT_[A-Z_]+)` \| `([^`]*)` \|", readme, re.M))
    expected = {env: default for env, default, _ in describe()}
    assert rows == expected


def test_readme_lists_every_metric() -> None:
    from prometheus_client import CollectorRegistry

    from agents.logic.aggregates import Snapshot
    from agents.logic.funnel_counts import FunnelCounts
    from streams.worker.funnel_metrics import FunnelCollector
    from streams.worker.metrics import Metrics, Published, SnapshotCollector

    registry = CollectorRegistry()
    Metrics(registry, ["page_view"])
    registry.register(SnapshotCollector(lambda: Published(Snapshot(), 0, 0, 0, 0), ["other"], [1]))
    registry.register(FunnelCollector(FunnelCounts, (), ["other"]))
    exported = {f.name + ("_total" if f.type == "counter" else "") for f in registry.collect()}
    readme = (ROOT / "README.md").read_text()
    section = readme.split("<!-- metrics:start -->")[1].split("<!-- metrics:end -->")[0]
    assert set(re.findall(r"^\| `(engagement_[a-z_]+)` \|", section, re.M)) == exported


def test_a_threshold_that_flags_every_new_user_stops_start_up() -> None:
    """A one-time user starts at P(alive) = b/(a+b) (10/11 for a=0.3, b=3): a threshold at or
    above it would put every new single-visit user at risk on arrival."""
    assert Settings.from_env({"ENGAGEMENT_ALIVE_THRESHOLD": "0.9"}).alive_threshold == 0.9
    for env in (
        {"ENGAGEMENT_ALIVE_THRESHOLD": "0.91"},
        {"ENGAGEMENT_MODEL_A": "3", "ENGAGEMENT_MODEL_B": "3"},  # b/(a+b) = 0.5
    ):
        with pytest.raises(SettingsError) as info:
            Settings.from_env(env)
        assert info.value.variable == "ENGAGEMENT_ALIVE_THRESHOLD"
        assert "b/(a+b)" in str(info.value)


def test_the_threshold_is_checked_against_the_parameters_file(tmp_path: Path) -> None:
    from agents.logic.churn import ModelParams
    from streams.worker.engine_setup import model_params

    path = tmp_path / "params.json"
    ModelParams(r=0.8, alpha=4.0, a=3.0, b=3.0).save(path)  # b/(a+b) = 0.5
    settings = Settings.from_env({"ENGAGEMENT_MODEL_FILE": str(path)})
    with pytest.raises(SettingsError) as info:
        model_params(settings)
    assert info.value.variable == "ENGAGEMENT_ALIVE_THRESHOLD"
    assert "ENGAGEMENT_MODEL_FILE" in str(info.value)
    lower = settings.replace(alive_threshold=0.4)
    assert model_params(lower) == ModelParams(r=0.8, alpha=4.0, a=3.0, b=3.0)


def test_model_refit_is_a_duration_or_off() -> None:
    assert Settings.from_env({}).model_refit == 24 * 3600
    assert Settings.from_env({"ENGAGEMENT_MODEL_REFIT": "off"}).model_refit == 0
    assert Settings.from_env({"ENGAGEMENT_MODEL_REFIT": "10s"}).model_refit == 10
    for bad in ("0s", "soon"):
        with pytest.raises(SettingsError) as info:
            Settings.from_env({"ENGAGEMENT_MODEL_REFIT": bad})
        assert info.value.variable == "ENGAGEMENT_MODEL_REFIT"


def test_settings_with_funnels_survive_pickling() -> None:
    """The ingest process gets the settings pickled (multiprocessing, spawn), funnels included:
    so agents/logic/funnels.py is not compiled (a frozen dataclass compiled by mypyc cannot be
    unpickled)."""
    import pickle

    funnels = '[{"name": "buy", "steps": ["signup", "purchase"], "window": "7d"}]'
    settings = Settings.from_env({"ENGAGEMENT_FUNNELS": funnels})
    assert settings.funnels
    assert pickle.loads(pickle.dumps(settings)) == settings
