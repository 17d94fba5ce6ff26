"""Assembling a worker: the Faust app, its table, agents, timers, services and web pages."""

from __future__ import annotations

import asyncio
import socket
import ssl
from dataclasses import dataclass
from typing import Any

import faust
from prometheus_client import CollectorRegistry

from agents import activity, lifecycle
from streams.settings import Settings
from streams.topics import Topics
from streams.worker import web
from streams.worker.consumer import RewindingApp
from streams.worker.delivery import Deliverer, Sink
from streams.worker.funnel_metrics import FunnelCollector
from streams.worker.ingest import IngestService, ingest_limits, ingest_router
from streams.worker.ingest_process import IngestProcess, own_process
from streams.worker.metrics import Metrics, SnapshotCollector, register_process_collectors
from streams.worker.model_sync import STEP_S, ModelSync
from streams.worker.runtime import Runtime
from streams.worker.store import require_store

SNAPSHOT_EVERY_S = 1.0  # how often the gauges' snapshot is refreshed
#: A member learns of a rebalance from its next heartbeat's answer, so a worker joining waits
#: up to this long for the others to rejoin (it was session/5: 6 s at the default 30 s)
HEARTBEAT_MAX_S = 1.0


@dataclass
class Worker:
    """Everything one worker process runs, for the CLI and the tests."""

    settings: Settings
    app: faust.App
    runtime: Runtime
    metrics: Metrics
    registry: CollectorRegistry
    ingest: IngestService | IngestProcess | None
    activity: Any


def advertised_url(settings: Settings) -> str:
    if settings.advertised_url:
        return settings.advertised_url
    host = settings.web_host if settings.web_host not in {"0.0.0.0", "::"} else socket.gethostname()
    return f"http://{host}:{settings.web_port}"


def heartbeat_interval(session_timeout: float) -> float:
    """Seconds between the group heartbeats: at most :data:`HEARTBEAT_MAX_S`, and a tenth of
    the session or less, so a few lost ones do not end the membership."""
    return max(0.1, min(HEARTBEAT_MAX_S, session_timeout / 10))


def faust_app(settings: Settings) -> faust.App:
    return RewindingApp(
        settings.app_id,
        broker=list(settings.broker),
        store="memory://" if settings.store == "memory://" else "rocksdb://",
        autodiscover=False,
        datadir=settings.data_dir,
        web_enabled=True,
        web_host=settings.web_host,
        web_port=settings.web_port,
        canonical_url=advertised_url(settings),
        # Faust's own views would show table contents, routing and internals to anyone:
        # /users/{id} (streams.worker.web) is the one guarded way in.
        debug=False,
        web_tables_enabled=False,
        web_router_enabled=False,
        web_stats_enabled=False,
        web_graph_enabled=False,
        web_metrics_enabled=False,
        topic_partitions=settings.partitions,
        topic_allow_declare=False,  # streams.topics.ensure_topics creates every topic first
        broker_session_timeout=settings.session_timeout,
        broker_heartbeat_interval=heartbeat_interval(settings.session_timeout),
        broker_request_timeout=max(40.0, settings.session_timeout + 10),
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        stream_buffer_maxsize=64,
        table_cleanup_interval=3600.0,
        table_standby_replicas=0,  # a partition taking over restores in bulk (streams.worker.store)
        logging_config=None,
        env={},  # Faust would let its own variables (APP_WEB_TABLES_ENABLED, WEB_PORT, ...)
        # override all of the above: Settings.from_env is the only reader of the environment
        **faust_security(settings),
    )


def faust_security(settings: Settings) -> dict[str, Any]:
    """Faust's (aiokafka's) side of ENGAGEMENT_SECURITY_PROTOCOL, SASL_* and SSL_*."""
    protocol = settings.security_protocol
    context: ssl.SSLContext | None = None
    if protocol.endswith("SSL"):
        context = ssl.create_default_context(cafile=settings.ssl_ca_file or None)
        if settings.ssl_cert_file:
            context.load_cert_chain(settings.ssl_cert_file, settings.ssl_key_file)
    if protocol.startswith("SASL_"):
        credentials = faust.SASLCredentials(
            username=settings.sasl_username,
            password=settings.sasl_password,
            mechanism=settings.sasl_mechanism,
            ssl_context=context,
        )
        return {"broker_credentials": credentials}
    if context is not None:
        return {"broker_credentials": faust.SSLCredentials(context)}
    return {}


def create_worker(
    settings: Settings, registry: CollectorRegistry | None = None, deliverer: Sink | None = None
) -> Worker:
    """Build (not start) a worker for ``settings`` (``deliverer``: tests inject a fake)."""
    require_store(settings.store)
    # collectors without names (the snapshot's gauges): answered by /metrics?name[]=... too
    if registry is None:
        registry = CollectorRegistry(support_collectors_without_names=True)
    metrics = Metrics(registry, settings.event_types)
    register_process_collectors(registry)
    app = faust_app(settings)
    # A deliverer injected by a test cannot be shared with a child process: ingest stays here.
    ingest_apart = deliverer is None and own_process(settings.ingest_process)
    deliverer = deliverer if deliverer is not None else Deliverer(settings, metrics)
    runtime = Runtime(settings, metrics, deliverer, app)
    table = runtime.table
    registry.register(
        SnapshotCollector(
            lambda: runtime.published, settings.channel_labels, settings.retention_days
        )
    )
    if settings.funnels:
        registry.register(
            FunnelCollector(
                lambda: runtime.published.funnels if runtime.published else None,
                settings.funnels,
                settings.channel_labels,
            )
        )
    ingest: IngestService | IngestProcess | None = None
    if settings.input_keyed_by_user:
        source = _raw_topic(app, settings.input_topic, settings.partitions)
        agent = activity.register_direct(app, source, runtime, ingest_limits(settings), metrics)
    else:
        by_user = _raw_topic(app, Topics.of(settings).by_user, settings.partitions)
        agent = activity.register(app, by_user, runtime)
        if ingest_apart:
            ingest = IngestProcess(settings, metrics)
        else:
            ingest = IngestService(settings, metrics, deliverer, ingest_router(settings))
        _start_with_app(app, ingest)
    lifecycle.register(app, runtime)
    _register_housekeeping(app, runtime)
    _register_model(app, ModelSync(settings, runtime, metrics.model))
    web.register(app, table, runtime, registry)
    return Worker(settings, app, runtime, metrics, registry, ingest, agent)


def _register_housekeeping(app: faust.App, runtime: Runtime) -> None:
    """The timer that refreshes the snapshot the metrics collector reads (so scrapes never
    scan state), and the flusher that makes pending groups durable when input pauses (a task
    of the runtime's own: Faust's timers end as soon as shutdown starts)."""

    @app.timer(SNAPSHOT_EVERY_S, name="snapshot")  # type: ignore[untyped-decorator]
    async def snapshot() -> None:
        runtime.refresh_snapshot()

    @app.task  # type: ignore[untyped-decorator]
    async def start_flusher() -> None:
        runtime.start_flusher(runtime.settings.tick_interval)

    app.on_before_shutdown.connect(runtime.stop_flusher)


def _register_model(app: faust.App, sync: ModelSync) -> None:
    """The live model's timer: read new parameters, publish rows, refit when due."""

    @app.timer(STEP_S, name="model")  # type: ignore[untyped-decorator]
    async def model() -> None:
        await sync.step()

    @app.on_before_shutdown.connect
    async def close_model(*args: Any, **kwargs: Any) -> None:
        sync.close()


def _raw_topic(app: faust.App, name: str, partitions: int) -> Any:
    return app.topic(
        name,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=partitions,
    )


def _start_with_app(app: faust.App, service: Any) -> None:
    @app.task  # type: ignore[untyped-decorator]
    async def start_service() -> None:
        await app.add_runtime_dependency(service)


class EngagementWorker(faust.Worker):
    """A Faust worker whose shutdown drains the pipeline first.

    Faust stops its consumer before the app's own services, so ingest would flush batches that
    no agent processes any more. Here ingest stops first (flushing and committing), the
    activity agent then folds what ingest delivered to the partitions this worker owns
    (bounded by ``drain_timeout``), the pending group is committed, and only then Faust stops.

    No terminal spinner: at ENGAGEMENT_LOG_LEVEL warning or above, Faust's spinner sets the root
    logger to DEBUG (its handler turns the spinner on every record), so every debug record of
    aiokafka, Faust and mode (aiokafka's fetcher alone: one per partition with records in
    every fetch response) would be built and thrown away.
    """

    def __init__(
        self, engagement: Worker, *args: Any, drain_timeout: float = 15.0, **kwargs: Any
    ) -> None:
        super().__init__(engagement.app, *args, **kwargs)
        self.spinner = None
        self.engagement = engagement
        self.drain_timeout = drain_timeout

    async def on_stop(self) -> None:
        await drain(self.engagement, self.drain_timeout)
        await super().on_stop()


async def drain(worker: Worker, timeout: float) -> None:
    """Stop ingest, then wait until its delivered by_user records on owned partitions are
    folded and made durable."""
    runtime, ingest = worker.runtime, worker.ingest
    runtime.stopping = True  # /readyz: 503 from now on
    if ingest is not None:
        await ingest.stop()
    deadline = asyncio.get_running_loop().time() + timeout
    while ingest is not None and asyncio.get_running_loop().time() < deadline:
        behind = [
            p
            for p, end in ingest.delivered_until.items()
            if p in runtime.engine.partitions and runtime.processed_until.get(p, 0) < end
        ]
        if not behind:
            break
        await asyncio.sleep(0.05)
    await runtime.finish_groups()
