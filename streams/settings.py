"""One frozen Settings object, read from ``ENGAGEMENT_*`` environment variables.

``Settings.from_env()`` is the only code in the project that reads the environment. Every field
names its variable, default and meaning in its metadata; the README table and the Helm values
are checked against :func:`describe` by tests. A bad value raises :class:`SettingsError` naming
the variable, so a worker never starts on a half-understood configuration.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from schemas.errors import SettingsError
from schemas.records import channel_labels

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.\-]*$")
DAY_SECONDS = 86_400.0
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")


def parse_duration(text: str) -> float:
    """``"90s"``, ``"15m"``, ``"1h"``, ``"7d"``, ``"250ms"`` or plain seconds -> seconds."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"not a duration: {text!r} (use e.g. 250ms, 30s, 15m, 1h, 7d)")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"not a boolean: {text!r} (use true or false)")


def _names(text: str) -> tuple[str, ...]:
    items = tuple(item.strip() for item in text.split(",") if item.strip())
    for item in items:
        if not _NAME.match(item):
            raise ValueError(f"{item!r} is not a lower-case name ([a-z0-9_.-])")
    if len(set(items)) != len(items):
        raise ValueError("names repeat")
    return items


def _brokers(text: str) -> tuple[str, ...]:
    urls = tuple(item.strip() for item in text.split(",") if item.strip())
    if not urls:
        raise ValueError("at least one broker URL is required, e.g. kafka://localhost:9092")
    for url in urls:
        if not re.match(r"^kafka://[^\s/:]+(:\d+)?$", url):
            raise ValueError(f"{url!r} is not of the form kafka://host:port")
    return urls


def _categories(text: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """``"purchase=purchase|checkout;social=share|invite"`` -> ((name, event types), ...)."""
    result = []
    for part in (p.strip() for p in text.split(";") if p.strip()):
        name, sep, types = part.partition("=")
        members = tuple(t.strip() for t in types.split("|") if t.strip())
        if not sep or not _NAME.match(name.strip()) or not members:
            raise ValueError(f"{part!r} is not of the form name=type|type")
        result.append((name.strip(), members))
    if len(result) > 4:
        raise ValueError("at most 4 categories are tracked per user")
    return tuple(result)


def _ints(text: str) -> tuple[int, ...]:
    values = tuple(sorted({int(v) for v in text.split(",") if v.strip()}))
    if not values or values[0] < 1:
        raise ValueError("a comma-separated list of whole days >= 1 is required")
    return values


def _timezone(text: str) -> str:
    try:
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"{text!r} is not an IANA timezone name") from exc
    return text


def _choice(*options: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in options:
            raise ValueError(f"{text!r} is not one of {', '.join(options)}")
        return text

    return parse


def _int_range(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text)
        if not low <= value <= high:
            raise ValueError(f"{value} is outside {low}..{high}")
        return value

    return parse


def _replicas(text: str) -> int:
    """A replica count 1..32, or -1 for the brokers' default (as Kafka Streams does)."""
    value = int(text)
    if value != -1 and not 1 <= value <= 32:
        raise ValueError(f"{value} is neither -1 (the brokers' default) nor within 1..32")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise ValueError(f"{value} must be > 0")
    return value


def _probability(text: str) -> float:
    value = float(text)
    if not 0 < value < 1:
        raise ValueError(f"{value} must be strictly between 0 and 1")
    return value


def _share(text: str) -> float:
    value = float(text)
    if not 0 <= value < 1:
        raise ValueError(f"{value} must be within [0, 1)")
    return value


def _positive_duration(text: str) -> float:
    value = parse_duration(text)
    if value <= 0:
        raise ValueError("must be longer than zero")
    return value


def _str(text: str) -> str:
    return text


def setting(
    env: str, default: str, parse: Callable[[str], Any], doc: str, secret: bool = False
) -> Any:
    """Declare a field read from ``env`` (default given as the text an operator would write)."""
    return field(
        default=parse(default),
        metadata={"env": env, "default": default, "parse": parse, "doc": doc, "secret": secret},
    )


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a worker or CLI tool needs to know, validated once at start-up."""

    broker: tuple[str, ...] = setting(
        "ENGAGEMENT_BROKER",
        "kafka://localhost:9092",
        _brokers,
        "Kafka bootstrap servers, comma-separated kafka://host:port URLs.",
    )
    app_id: str = setting(
        "ENGAGEMENT_APP_ID",
        "engagement-stream",
        _str,
        "Consumer group and changelog-topic prefix; one per deployment.",
    )
    input_topic: str = setting(
        "ENGAGEMENT_INPUT_TOPIC",
        "user.events",
        _str,
        "Topic upstream services publish activity events to.",
    )
    input_keyed_by_user: bool = setting(
        "ENGAGEMENT_INPUT_KEYED_BY_USER",
        "false",
        _bool,
        "The input topic is already keyed by user id with murmur2 and has ENGAGEMENT_PARTITIONS "
        "partitions: skip the re-keying hop and fold straight from it (one Faust message per "
        "event, so slower per event than the batched hop).",
    )
    topic_prefix: str = setting(
        "ENGAGEMENT_TOPIC_PREFIX",
        "engagement",
        _str,
        "Prefix of the topics engagement-stream owns (events.by_user, dead_letter, signals.*).",
    )
    partitions: int = setting(
        "ENGAGEMENT_PARTITIONS",
        "8",
        _int_range(1, 10_000),
        "Partitions of engagement.events.by_user and the state tables; the unit of scale-out.",
    )
    replication_factor: int = setting(
        "ENGAGEMENT_REPLICATION_FACTOR",
        "-1",
        _replicas,
        "Replication factor of the topics engagement-stream creates (events.by_user, "
        "dead_letter, signals.*, the state changelog); -1: the brokers' "
        "default.replication.factor.",
    )
    min_insync_replicas: int = setting(
        "ENGAGEMENT_MIN_INSYNC_REPLICAS",
        "-1",
        _replicas,
        "min.insync.replicas of the topics engagement-stream creates (writes wait for this many "
        "replicas); -1: the brokers' default.",
    )
    store: str = setting(
        "ENGAGEMENT_STORE",
        "memory://",
        _choice("memory://", "rocksdict://"),
        "State store: memory:// (development) or rocksdict:// (production; files in the data dir).",
    )
    data_dir: str = setting(
        "ENGAGEMENT_DATA_DIR",
        "data",
        _str,
        "Directory for the worker's local state (RocksDB files, Faust metadata).",
    )
    web_host: str = setting(
        "ENGAGEMENT_WEB_HOST",
        "0.0.0.0",
        _str,
        "Address the worker's web server binds (/metrics, /users/{id}, /healthz, /readyz).",
    )
    web_port: int = setting(
        "ENGAGEMENT_WEB_PORT", "6066", _int_range(1, 65_535), "Port of the worker's web server."
    )
    advertised_url: str = setting(
        "ENGAGEMENT_ADVERTISED_URL",
        "",
        _str,
        "URL other workers use to reach this one's web server (for /users/{id} routing); "
        "default http://<host>:<port> from ENGAGEMENT_WEB_HOST or the hostname.",
    )
    timezone: str = setting(
        "ENGAGEMENT_TIMEZONE",
        "UTC",
        _timezone,
        "IANA timezone whose calendar days define 'day' for DAU, cohorts and retention.",
    )
    clock: str = setting(
        "ENGAGEMENT_CLOCK",
        "wall",
        _choice("wall", "event"),
        "wall: deadlines fire on processing time (live). event: they fire when the event-time "
        "watermark passes them (replay, backfill, deterministic tests).",
    )
    allowed_lateness: float = setting(
        "ENGAGEMENT_ALLOWED_LATENESS",
        "1h",
        _positive_duration,
        "How far the event-clock watermark trails the newest event time, and how long after its "
        "end a day counts as incomplete. Must be under one day.",
    )
    idle_timeout: float = setting(
        "ENGAGEMENT_IDLE_TIMEOUT",
        "30s",
        _positive_duration,
        "Event clock: how long an input partition must have had nothing to read before the "
        "watermark stops waiting for it (reaching its end alone is not enough), and how long a "
        "by_user partition waits for an ingest instance it no longer hears from.",
    )
    max_future_skew: float = setting(
        "ENGAGEMENT_MAX_FUTURE_SKEW",
        "10m",
        _positive_duration,
        "Events stamped further ahead of the wall clock than this are dead-lettered (< 1 day).",
    )
    dormant_after: float = setting(
        "ENGAGEMENT_DORMANT_AFTER",
        "7d",
        _positive_duration,
        "A user without activity for this long becomes dormant.",
    )
    churned_after: float = setting(
        "ENGAGEMENT_CHURNED_AFTER",
        "30d",
        _positive_duration,
        "A user without activity for this long becomes churned (longer than the dormant delay).",
    )
    signal_max_age: float = setting(
        "ENGAGEMENT_SIGNAL_MAX_AGE",
        "2d",
        parse_duration,
        "A signal whose trigger (deadline or returning event) is older than this relative to the "
        "clock's now is not delivered, only counted in engagement_signals_suppressed_total; the "
        "user's state advances as if it had been. Wall clock: now is wall time, so a first start "
        "on months of history or a long outage does not flood consumers with stale signals. "
        "Event clock: now is the partition's watermark, so a replay still delivers what was "
        "fresh at its own time. 0: off.",
    )
    holdout_share: float = setting(
        "ENGAGEMENT_HOLDOUT_SHARE",
        "0.1",
        _share,
        "Share of signalled users held out per signal kind (signals with arm=holdout, which "
        "consumers must not act on), to measure the win-back uplift; 0: no holdout.",
    )
    holdout_salt: str = setting(
        "ENGAGEMENT_HOLDOUT_SALT",
        "engagement",
        _str,
        "Salt of the holdout hash; change it to draw a new holdout (agents/logic/holdout.py).",
    )
    discard_after: float = setting(
        "ENGAGEMENT_DISCARD_AFTER",
        "400d",
        _positive_duration,
        "A churned user's state is deleted after this long without activity.",
    )
    alive_threshold: float = setting(
        "ENGAGEMENT_ALIVE_THRESHOLD",
        "0.5",
        _probability,
        "A user becomes at_risk when the MBG/NBD probability of being alive falls below this.",
    )
    model_r: float = setting(
        "ENGAGEMENT_MODEL_R", "0.8", _positive_float, "MBG/NBD population parameter r (days)."
    )
    model_alpha: float = setting(
        "ENGAGEMENT_MODEL_ALPHA", "4.0", _positive_float, "MBG/NBD population parameter alpha."
    )
    model_a: float = setting(
        "ENGAGEMENT_MODEL_A", "0.3", _positive_float, "MBG/NBD population parameter a."
    )
    model_b: float = setting(
        "ENGAGEMENT_MODEL_B", "3.0", _positive_float, "MBG/NBD population parameter b."
    )
    model_file: str = setting(
        "ENGAGEMENT_MODEL_FILE",
        "",
        _str,
        "A parameters file written by `engagement fit`; overrides the ENGAGEMENT_MODEL_* values.",
    )
    horizon_days: int = setting(
        "ENGAGEMENT_HORIZON_DAYS",
        "120",
        _int_range(90, 1024),
        "Days of per-user activity history kept in state (active-day bitmaps).",
    )
    aggregate_days: int = setting(
        "ENGAGEMENT_AGGREGATE_DAYS",
        "35",
        _int_range(35, 90),
        "Days of partition aggregates kept; late events inside it still count in their own day.",
    )
    retention_days: tuple[int, ...] = setting(
        "ENGAGEMENT_RETENTION_DAYS", "1,7,30", _ints, "The N of the N-day retention gauges."
    )
    channels: tuple[str, ...] = setting(
        "ENGAGEMENT_CHANNELS",
        "organic,paid_search,paid_social,email,referral",
        _names,
        "Acquisition channels reported by name; any other channel is reported as 'other'.",
    )
    event_types: tuple[str, ...] = setting(
        "ENGAGEMENT_EVENT_TYPES",
        "session_start,page_view,screen_view,click,search,add_to_cart,purchase,share,invite,"
        "comment,review,feedback",
        _names,
        "Event types counted by name in metrics; any other type is counted as 'other'.",
    )
    categories: tuple[tuple[str, tuple[str, ...]], ...] = setting(
        "ENGAGEMENT_CATEGORIES",
        "purchase=purchase|add_to_cart;social=share|invite|comment;feedback=review|feedback",
        _categories,
        "Event categories whose decline against the user's own baseline is reported in signals.",
    )
    schema_versions: tuple[int, ...] = setting(
        "ENGAGEMENT_SCHEMA_VERSIONS",
        "1",
        _ints,
        "schema_version values of the canonical event that are accepted.",
    )
    max_message_bytes: int = setting(
        "ENGAGEMENT_MAX_MESSAGE_BYTES",
        "65536",
        _int_range(256, 16 * 1024 * 1024),
        "Input messages larger than this are dead-lettered (reason too_large).",
    )
    record_max_bytes: int = setting(
        "ENGAGEMENT_RECORD_MAX_BYTES",
        "524288",
        _int_range(64 * 1024, 1_000_000),
        "Largest record ingest writes: events.by_user batches are split by encoded bytes to "
        "stay under it, and a larger dead letter keeps only a prefix of the rejected value "
        "(plus its size and SHA-256). Checked at start-up against max.message.bytes of the "
        "by_user and dead-letter topics and of the producer.",
    )
    ingest_batch: int = setting(
        "ENGAGEMENT_INGEST_BATCH",
        "2000",
        _int_range(1, 100_000),
        "Most input messages ingest reads, validates and forwards in one step.",
    )
    ingest_process: str = setting(
        "ENGAGEMENT_INGEST_PROCESS",
        "auto",
        _choice("auto", "true", "false"),
        "Run ingest (decode, validation, routing) in a child process of the worker, so it and "
        "the fold use two cores: true, false, or auto (when the worker may run on 2+ CPUs).",
    )
    tick_interval: float = setting(
        "ENGAGEMENT_TICK_INTERVAL",
        "200ms",
        _positive_duration,
        "How often the deadline timer looks for due users.",
    )
    durable_timeout: float = setting(
        "ENGAGEMENT_DURABLE_TIMEOUT",
        "60s",
        _positive_duration,
        "Longest a group of state changes and signals may take to reach Kafka (deliveries are "
        "retried meanwhile and /readyz answers 503); then the worker stops with exit code 70 and "
        "its unacknowledged input is read again after the restart.",
    )
    session_timeout: float = setting(
        "ENGAGEMENT_SESSION_TIMEOUT",
        "30s",
        _positive_duration,
        "Consumer-group session timeout (short values settle groups faster on Tansu).",
    )
    log_level: str = setting(
        "ENGAGEMENT_LOG_LEVEL",
        "info",
        _choice("debug", "info", "warning", "error"),
        "Log level of the worker and tools.",
    )
    security_protocol: str = setting(
        "ENGAGEMENT_SECURITY_PROTOCOL",
        "PLAINTEXT",
        _choice(*SECURITY_PROTOCOLS),
        "How the worker and tools talk to Kafka: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.",
    )
    sasl_mechanism: str = setting(
        "ENGAGEMENT_SASL_MECHANISM",
        "SCRAM-SHA-512",
        _choice("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"),
        "SASL mechanism with SASL_PLAINTEXT or SASL_SSL: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.",
    )
    sasl_username: str = setting(
        "ENGAGEMENT_SASL_USERNAME", "", _str, "SASL user name (required with SASL_*)."
    )
    sasl_password: str = setting(
        "ENGAGEMENT_SASL_PASSWORD",
        "",
        _str,
        "SASL password (required with SASL_*; secret: masked in logs).",
        secret=True,
    )
    ssl_ca_file: str = setting(
        "ENGAGEMENT_SSL_CA_FILE",
        "",
        _str,
        "PEM file of the CA(s) that signed the brokers' certificates (SSL, SASL_SSL); "
        "empty: the system's trust store.",
    )
    ssl_cert_file: str = setting(
        "ENGAGEMENT_SSL_CERT_FILE",
        "",
        _str,
        "PEM client certificate for brokers that require TLS client authentication.",
    )
    ssl_key_file: str = setting(
        "ENGAGEMENT_SSL_KEY_FILE",
        "",
        _str,
        "PEM private key of ENGAGEMENT_SSL_CERT_FILE (unencrypted).",
    )
    api_token: str = setting(
        "ENGAGEMENT_API_TOKEN",
        "",
        _str,
        "When set, GET /users/{id} requires 'Authorization: Bearer <token>' (secret); "
        "/metrics, /healthz and /readyz stay open.",
        secret=True,
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build Settings from ``environ`` (default: the process environment)."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            name = f.metadata["env"]
            if name in env:
                try:
                    values[f.name] = f.metadata["parse"](env[name])
                except (ValueError, TypeError) as exc:
                    got = "***" if f.metadata["secret"] else repr(env[name])
                    raise SettingsError(name, f"{exc} (got {got})") from None
        return cls(**values)._checked()

    @classmethod
    def from_env_or_exit(cls) -> Settings:
        """For commands: Settings from the environment, or exit status 2 naming the variable."""
        try:
            return cls.from_env()
        except SettingsError as exc:
            print(f"engagement: invalid setting {exc}", file=sys.stderr)
            raise SystemExit(2) from None

    def _checked(self) -> Settings:
        if self.churned_after <= self.dormant_after:
            raise SettingsError(
                "ENGAGEMENT_CHURNED_AFTER", "must be longer than ENGAGEMENT_DORMANT_AFTER"
            )
        if self.discard_after <= self.churned_after:
            raise SettingsError(
                "ENGAGEMENT_DISCARD_AFTER", "must be longer than ENGAGEMENT_CHURNED_AFTER"
            )
        for name, value in (
            ("ENGAGEMENT_ALLOWED_LATENESS", self.allowed_lateness),
            ("ENGAGEMENT_MAX_FUTURE_SKEW", self.max_future_skew),
        ):
            if value >= DAY_SECONDS:
                raise SettingsError(name, "must be shorter than one day")
        if max(self.retention_days) + 2 > self.aggregate_days:
            raise SettingsError(
                "ENGAGEMENT_RETENTION_DAYS",
                "the largest N must be at least 2 days below ENGAGEMENT_AGGREGATE_DAYS",
            )
        if -1 < self.replication_factor < self.min_insync_replicas:
            raise SettingsError(
                "ENGAGEMENT_MIN_INSYNC_REPLICAS",
                "must not exceed ENGAGEMENT_REPLICATION_FACTOR (no write could succeed)",
            )
        _check_security(self)
        return self

    def __repr__(self) -> str:
        """Like the dataclass's, with secrets shown as ``'***'`` (also ``str()``)."""
        fields = dataclasses.fields(self)
        shown = ", ".join(f"{f.name}={_shown(f, getattr(self, f.name))!r}" for f in fields)
        return f"Settings({shown})"

    def secrets(self) -> tuple[str, ...]:
        """The values of the secret settings that are set (what logs must never show)."""
        return tuple(
            value
            for f in dataclasses.fields(self)
            if f.metadata["secret"] and (value := getattr(self, f.name))
        )

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes`` applied and checked again (for tests and tools)."""
        return dataclasses.replace(self, **changes)._checked()

    @property
    def channel_labels(self) -> tuple[str, ...]:
        """The acquisition channel labels by index: ``other`` first, then the allowlist."""
        return channel_labels(self.channels)

    def as_env(self) -> dict[str, str]:
        """The settings as environment variables, for starting child processes."""
        return {f.metadata["env"]: _render(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def masked(self) -> dict[str, str]:
        """The settings for logs: secrets replaced by ``***``."""
        return {
            f.metadata["env"]: _render(_shown(f, getattr(self, f.name)))
            for f in dataclasses.fields(self)
        }


def _shown(f: dataclasses.Field[Any], value: Any) -> Any:
    """``value``, or ``***`` when ``f`` is a secret that is set."""
    return "***" if f.metadata["secret"] and value else value


def _check_security(settings: Settings) -> None:
    """SASL needs a user and password; TLS files must exist and only go with TLS."""
    protocol = settings.security_protocol
    if protocol.startswith("SASL_"):
        for name, value in (
            ("ENGAGEMENT_SASL_USERNAME", settings.sasl_username),
            ("ENGAGEMENT_SASL_PASSWORD", settings.sasl_password),
        ):
            if not value:
                raise SettingsError(
                    name, f"is required with ENGAGEMENT_SECURITY_PROTOCOL={protocol}"
                )
    files = (
        ("ENGAGEMENT_SSL_CA_FILE", settings.ssl_ca_file),
        ("ENGAGEMENT_SSL_CERT_FILE", settings.ssl_cert_file),
        ("ENGAGEMENT_SSL_KEY_FILE", settings.ssl_key_file),
    )
    for name, path in files:
        if path and not protocol.endswith("SSL"):
            raise SettingsError(name, f"is only used with SSL or SASL_SSL, not {protocol}")
        if path and not os.path.isfile(path):
            raise SettingsError(name, f"no such file: {path}")
    if bool(settings.ssl_cert_file) != bool(settings.ssl_key_file):
        raise SettingsError(
            "ENGAGEMENT_SSL_KEY_FILE", "ENGAGEMENT_SSL_CERT_FILE and _KEY_FILE go together"
        )


def _render(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple) and value and isinstance(value[0], tuple):
        return ";".join(f"{name}={'|'.join(types)}" for name, types in value)
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def describe() -> list[tuple[str, str, str]]:
    """(variable, default, meaning) for every setting, in declaration order."""
    return [
        (f.metadata["env"], f.metadata["default"], f.metadata["doc"])
        for f in dataclasses.fields(Settings)
    ]


def markdown_table() -> str:
    """The README's settings table (kept in sync by a test)."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    rows += [f"| `{env}` | `{default}` | {doc} |" for env, default, doc in describe()]
    return "\n".join(rows)
