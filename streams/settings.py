"""One frozen Settings object, read from ``ENGAGEMENT_*`` environment variables.

``Settings.from_env()`` is the only code in the project that reads the environment. Every field
names its variable, default and meaning in its metadata; the README table and the Helm values
are checked against :func:`describe` by tests. A bad value raises :class:`SettingsError` naming
the variable, so a worker never starts on a half-understood configuration.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from agents.logic.churn import ModelParams, threshold_problem
from agents.logic.funnels import Funnel, render_funnels
from schemas.errors import SettingsError
from schemas.records import channel_labels
from streams.setting_values import (
    DAY_SECONDS,
    SECURITY_PROTOCOLS,
    as_bool,
    as_brokers,
    as_categories,
    as_choice,
    as_duration_or_off,
    as_funnels,
    as_http_url,
    as_int_range,
    as_ints,
    as_names,
    as_positive_duration,
    as_positive_float,
    as_probability,
    as_replicas,
    as_share,
    as_str,
    as_timezone,
    parse_duration,
)


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
        as_brokers,
        "Kafka bootstrap servers, comma-separated kafka://host:port URLs.",
    )
    app_id: str = setting(
        "ENGAGEMENT_APP_ID",
        "engagement-stream",
        as_str,
        "Consumer group and changelog-topic prefix; one per deployment.",
    )
    input_topic: str = setting(
        "ENGAGEMENT_INPUT_TOPIC",
        "user.events",
        as_str,
        "Topic upstream services publish activity events to.",
    )
    input_keyed_by_user: bool = setting(
        "ENGAGEMENT_INPUT_KEYED_BY_USER",
        "false",
        as_bool,
        "The input topic is already keyed by user id with murmur2 and has ENGAGEMENT_PARTITIONS "
        "partitions: skip the re-keying hop and fold straight from it (one Faust message per "
        "event, so slower per event than the batched hop).",
    )
    topic_prefix: str = setting(
        "ENGAGEMENT_TOPIC_PREFIX",
        "engagement",
        as_str,
        "Prefix of the topics engagement-stream owns (events.by_user, dead_letter, signals.*).",
    )
    partitions: int = setting(
        "ENGAGEMENT_PARTITIONS",
        "8",
        as_int_range(1, 10_000),
        "Partitions of engagement.events.by_user and the state tables; the unit of scale-out.",
    )
    replication_factor: int = setting(
        "ENGAGEMENT_REPLICATION_FACTOR",
        "-1",
        as_replicas,
        "Replication factor of the topics engagement-stream creates (events.by_user, "
        "dead_letter, signals.*, the state changelog); -1: the brokers' "
        "default.replication.factor.",
    )
    min_insync_replicas: int = setting(
        "ENGAGEMENT_MIN_INSYNC_REPLICAS",
        "-1",
        as_replicas,
        "min.insync.replicas of the topics engagement-stream creates (writes wait for this many "
        "replicas); -1: the brokers' default.",
    )
    store: str = setting(
        "ENGAGEMENT_STORE",
        "memory://",
        as_choice("memory://", "rocksdict://"),
        "State store: memory:// (development) or rocksdict:// (production; files in the data dir).",
    )
    state_cache: int = setting(
        "ENGAGEMENT_STATE_CACHE",
        "200000",
        as_int_range(0, 100_000_000),
        "rocksdict:// only: user states kept in memory over the store, read or written lately "
        "(about 200 bytes each for a 75-byte state), split evenly over the "
        "ENGAGEMENT_PARTITIONS partitions: a worker owning all of them keeps at most this many. "
        "0: none, every read goes to RocksDB.",
    )
    state_write_back: float = setting(
        "ENGAGEMENT_STATE_WRITE_BACK",
        "5s",
        as_duration_or_off,
        "rocksdict:// only: how long user states already in the changelog may wait before they "
        "are written to RocksDB, so that a user changed several times meanwhile is written once "
        "(as Kafka Streams' commit interval); sooner once ENGAGEMENT_STATE_CACHE states wait. "
        "The store records the changelog offset it holds only after the write, so a crash "
        "re-reads the waiting states from the changelog. off: written at once.",
    )
    data_dir: str = setting(
        "ENGAGEMENT_DATA_DIR",
        "data",
        as_str,
        "Directory for the worker's local state (RocksDB files, Faust metadata).",
    )
    web_host: str = setting(
        "ENGAGEMENT_WEB_HOST",
        "0.0.0.0",
        as_str,
        "Address the worker's web server binds (/metrics, /users/{id}, /healthz, /readyz).",
    )
    web_port: int = setting(
        "ENGAGEMENT_WEB_PORT", "6066", as_int_range(1, 65_535), "Port of the worker's web server."
    )
    advertised_url: str = setting(
        "ENGAGEMENT_ADVERTISED_URL",
        "",
        as_str,
        "URL other workers use to reach this one's web server (for /users/{id} routing); "
        "default http://<host>:<port> from ENGAGEMENT_WEB_HOST or the hostname.",
    )
    timezone: str = setting(
        "ENGAGEMENT_TIMEZONE",
        "UTC",
        as_timezone,
        "IANA timezone whose calendar days define 'day' for DAU, cohorts and retention.",
    )
    clock: str = setting(
        "ENGAGEMENT_CLOCK",
        "wall",
        as_choice("wall", "event"),
        "wall: deadlines fire on processing time (live). event: they fire when the event-time "
        "watermark passes them (replay, backfill, deterministic tests).",
    )
    allowed_lateness: float = setting(
        "ENGAGEMENT_ALLOWED_LATENESS",
        "1h",
        as_positive_duration,
        "How far the event-clock watermark trails the newest event time, and how long after its "
        "end a day counts as incomplete. Must be under one day.",
    )
    idle_timeout: float = setting(
        "ENGAGEMENT_IDLE_TIMEOUT",
        "30s",
        as_positive_duration,
        "Event clock: how long an input partition must have had nothing to read before the "
        "watermark stops waiting for it (reaching its end alone is not enough), and how long a "
        "by_user partition waits for an ingest instance it no longer hears from.",
    )
    max_future_skew: float = setting(
        "ENGAGEMENT_MAX_FUTURE_SKEW",
        "10m",
        as_positive_duration,
        "Events stamped further ahead of the wall clock than this are dead-lettered (< 1 day).",
    )
    dormant_after: float = setting(
        "ENGAGEMENT_DORMANT_AFTER",
        "7d",
        as_positive_duration,
        "A user without activity for this long becomes dormant.",
    )
    churned_after: float = setting(
        "ENGAGEMENT_CHURNED_AFTER",
        "30d",
        as_positive_duration,
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
        as_share,
        "Share of signalled users held out per signal kind (signals with arm=holdout, which "
        "consumers must not act on), to measure the win-back uplift; 0: no holdout.",
    )
    holdout_salt: str = setting(
        "ENGAGEMENT_HOLDOUT_SALT",
        "engagement",
        as_str,
        "Salt of the holdout hash; change it to draw a new holdout (agents/logic/holdout.py).",
    )
    discard_after: float = setting(
        "ENGAGEMENT_DISCARD_AFTER",
        "400d",
        as_positive_duration,
        "A churned user's state is deleted after this long without activity.",
    )
    alive_threshold: float = setting(
        "ENGAGEMENT_ALIVE_THRESHOLD",
        "0.5",
        as_probability,
        "A user becomes at_risk when the MBG/NBD probability of being alive falls below this; "
        "must be below b/(a+b) of the parameters in use (a one-time user's P(alive) on "
        "arrival), else start-up stops.",
    )
    model_r: float = setting(
        "ENGAGEMENT_MODEL_R", "0.8", as_positive_float, "MBG/NBD population parameter r (days)."
    )
    model_alpha: float = setting(
        "ENGAGEMENT_MODEL_ALPHA", "4.0", as_positive_float, "MBG/NBD population parameter alpha."
    )
    model_a: float = setting(
        "ENGAGEMENT_MODEL_A", "0.3", as_positive_float, "MBG/NBD population parameter a."
    )
    model_b: float = setting(
        "ENGAGEMENT_MODEL_B", "3.0", as_positive_float, "MBG/NBD population parameter b."
    )
    model_file: str = setting(
        "ENGAGEMENT_MODEL_FILE",
        "",
        as_str,
        "A parameters file written by `engagement fit`; overrides the ENGAGEMENT_MODEL_* values.",
    )
    model_refit: float = setting(
        "ENGAGEMENT_MODEL_REFIT",
        "24h",
        as_duration_or_off,
        "How often the MBG/NBD parameters are refitted from the users of all partitions (rows "
        "meet on the compacted `<prefix>.model` topic; the owner of partition 0 fits); until a "
        "first fit is accepted it is tried every minute at most. off: never (the "
        "ENGAGEMENT_MODEL_* values, or ENGAGEMENT_MODEL_FILE, which always wins, stay in use).",
    )
    model_refit_min_users: int = setting(
        "ENGAGEMENT_MODEL_REFIT_MIN_USERS",
        "1000",
        as_int_range(10, 1_000_000_000),
        "A refit on fewer users is not used (nor one that did not converge, or whose "
        "parameters lie outside [0.001, 10000]): the last good parameters stay.",
    )
    horizon_days: int = setting(
        "ENGAGEMENT_HORIZON_DAYS",
        "120",
        as_int_range(90, 1024),
        "Days of per-user activity history kept in state (active-day bitmaps).",
    )
    aggregate_days: int = setting(
        "ENGAGEMENT_AGGREGATE_DAYS",
        "35",
        as_int_range(35, 90),
        "Days of partition aggregates kept; late events inside it still count in their own day.",
    )
    retention_days: tuple[int, ...] = setting(
        "ENGAGEMENT_RETENTION_DAYS", "1,7,30", as_ints, "The N of the N-day retention gauges."
    )
    channels: tuple[str, ...] = setting(
        "ENGAGEMENT_CHANNELS",
        "organic,paid_search,paid_social,email,referral",
        as_names,
        "Acquisition channels reported by name; any other channel is reported as 'other'.",
    )
    event_types: tuple[str, ...] = setting(
        "ENGAGEMENT_EVENT_TYPES",
        "session_start,page_view,screen_view,click,search,add_to_cart,purchase,share,invite,"
        "comment,review,feedback",
        as_names,
        "Event types counted by name in metrics; any other type is counted as 'other'.",
    )
    categories: tuple[tuple[str, tuple[str, ...]], ...] = setting(
        "ENGAGEMENT_CATEGORIES",
        "purchase=purchase|add_to_cart;social=share|invite|comment;feedback=review|feedback",
        as_categories,
        "Event categories whose decline against the user's own baseline is reported in signals.",
    )
    funnels: tuple[Funnel, ...] = setting(
        "ENGAGEMENT_FUNNELS",
        "",
        as_funnels,
        "Activation funnels, a JSON list (or the path of a file holding one) of {name, steps "
        "(event types, or {event_type, match: {property: value}} to count only events with "
        "those property values), window (e.g. 7d, 48h)}: the window starts at the user's "
        "first step, steps count in order; a user whose window ends before the last step gets "
        "a stalled signal. Empty: none (the simulator's funnel is in the README's Definitions).",
    )
    schema_versions: tuple[int, ...] = setting(
        "ENGAGEMENT_SCHEMA_VERSIONS",
        "1",
        as_ints,
        "schema_version values of the canonical event that are accepted.",
    )
    max_message_bytes: int = setting(
        "ENGAGEMENT_MAX_MESSAGE_BYTES",
        "65536",
        as_int_range(256, 16 * 1024 * 1024),
        "Input messages larger than this are dead-lettered (reason too_large).",
    )
    schema_registry_url: str = setting(
        "ENGAGEMENT_SCHEMA_REGISTRY_URL",
        "",
        as_http_url,
        "Base URL of a Confluent-compatible Schema Registry (e.g. http://registry:8081, or "
        "Apicurio's http://host:8080/apis/ccompat/v6): input values in its wire format (0x00 + "
        "schema id) are decoded as Avro or Protobuf; empty: off, such values are dead-lettered "
        "(unknown_schema_id). Not with ENGAGEMENT_INPUT_KEYED_BY_USER.",
    )
    record_max_bytes: int = setting(
        "ENGAGEMENT_RECORD_MAX_BYTES",
        "524288",
        as_int_range(64 * 1024, 1_000_000),
        "Largest record ingest writes: events.by_user batches are split by encoded bytes to "
        "stay under it, and a larger dead letter keeps only a prefix of the rejected value "
        "(plus its size and SHA-256). Checked at start-up against max.message.bytes of the "
        "by_user and dead-letter topics and of the producer.",
    )
    ingest_batch: int = setting(
        "ENGAGEMENT_INGEST_BATCH",
        "2000",
        as_int_range(1, 100_000),
        "Most input messages ingest reads, validates and forwards in one step.",
    )
    ingest_process: str = setting(
        "ENGAGEMENT_INGEST_PROCESS",
        "auto",
        as_choice("auto", "true", "false"),
        "Run ingest (decode, validation, routing) in a child process of the worker, so it and "
        "the fold use two cores: true, false, or auto (when the worker may run on 2+ CPUs).",
    )
    ingest_niceness: int = setting(
        "ENGAGEMENT_INGEST_NICENESS",
        "10",
        as_int_range(0, 19),
        "How much lower the ingest child process runs in CPU priority than the fold (a nice "
        "increment, 0-19; 0: the same): where the two want the same CPU, the fold goes first "
        "and ingest, which runs ahead of it, takes what is left.",
    )
    tick_interval: float = setting(
        "ENGAGEMENT_TICK_INTERVAL",
        "200ms",
        as_positive_duration,
        "How often the deadline timer looks for due users.",
    )
    durable_timeout: float = setting(
        "ENGAGEMENT_DURABLE_TIMEOUT",
        "60s",
        as_positive_duration,
        "Longest a group of state changes and signals may take to reach Kafka (deliveries are "
        "retried meanwhile and /readyz answers 503); then the worker stops with exit code 70 and "
        "its unacknowledged input is read again after the restart.",
    )
    session_timeout: float = setting(
        "ENGAGEMENT_SESSION_TIMEOUT",
        "30s",
        as_positive_duration,
        "Consumer-group session timeout (short values settle groups faster on Tansu).",
    )
    log_level: str = setting(
        "ENGAGEMENT_LOG_LEVEL",
        "info",
        as_choice("debug", "info", "warning", "error"),
        "Log level of the worker and tools.",
    )
    log_format: str = setting(
        "ENGAGEMENT_LOG_FORMAT",
        "text",
        as_choice("text", "json"),
        "Log lines of the worker (and its libraries: Faust, aiokafka, librdkafka): text, or json "
        "(one JSON object per line: time, level, logger, message, exception).",
    )
    connect_timeout: float = setting(
        "ENGAGEMENT_CONNECT_TIMEOUT",
        "5s",
        as_positive_duration,
        "How long the worker and tools wait for a first answer from ENGAGEMENT_BROKER before "
        "they stop with exit code 3 (broker unreachable).",
    )
    security_protocol: str = setting(
        "ENGAGEMENT_SECURITY_PROTOCOL",
        "PLAINTEXT",
        as_choice(*SECURITY_PROTOCOLS),
        "How the worker and tools talk to Kafka: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.",
    )
    sasl_mechanism: str = setting(
        "ENGAGEMENT_SASL_MECHANISM",
        "SCRAM-SHA-512",
        as_choice("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"),
        "SASL mechanism with SASL_PLAINTEXT or SASL_SSL: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.",
    )
    sasl_username: str = setting(
        "ENGAGEMENT_SASL_USERNAME", "", as_str, "SASL user name (required with SASL_*)."
    )
    sasl_password: str = setting(
        "ENGAGEMENT_SASL_PASSWORD",
        "",
        as_str,
        "SASL password (required with SASL_*; secret: masked in logs).",
        secret=True,
    )
    ssl_ca_file: str = setting(
        "ENGAGEMENT_SSL_CA_FILE",
        "",
        as_str,
        "PEM file of the CA(s) that signed the brokers' certificates (SSL, SASL_SSL); "
        "empty: the system's trust store.",
    )
    ssl_cert_file: str = setting(
        "ENGAGEMENT_SSL_CERT_FILE",
        "",
        as_str,
        "PEM client certificate for brokers that require TLS client authentication.",
    )
    ssl_key_file: str = setting(
        "ENGAGEMENT_SSL_KEY_FILE",
        "",
        as_str,
        "PEM private key of ENGAGEMENT_SSL_CERT_FILE (unencrypted).",
    )
    api_token: str = setting(
        "ENGAGEMENT_API_TOKEN",
        "",
        as_str,
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
        from streams.exits import USAGE

        try:
            return cls.from_env()
        except SettingsError as exc:
            print(f"engagement: invalid setting {exc}", file=sys.stderr)
            raise SystemExit(USAGE) from None

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
        if self.schema_registry_url and self.input_keyed_by_user:
            raise SettingsError(
                "ENGAGEMENT_SCHEMA_REGISTRY_URL",
                "is read by the re-keying ingest stage, not with ENGAGEMENT_INPUT_KEYED_BY_USER",
            )
        _check_security(self)
        if not self.model_file:
            check_threshold(self.settings_params(), self.alive_threshold, "ENGAGEMENT_MODEL_*")
        return self

    def settings_params(self) -> ModelParams:
        """The population parameters of the ENGAGEMENT_MODEL_* settings (not the file's)."""
        return ModelParams(self.model_r, self.model_alpha, self.model_a, self.model_b)

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


def check_threshold(params: ModelParams, threshold: float, source: str) -> None:
    """SettingsError naming ENGAGEMENT_ALIVE_THRESHOLD if it would flag every new user under
    ``params`` (read from ``source``)."""
    problem = threshold_problem(params, threshold)
    if problem:
        raise SettingsError("ENGAGEMENT_ALIVE_THRESHOLD", f"{problem} (parameters from {source})")


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
    if isinstance(value, tuple) and value and isinstance(value[0], Funnel):
        return render_funnels(value)
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
