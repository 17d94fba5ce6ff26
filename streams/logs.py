"""The worker's log lines: ``ENGAGEMENT_LOG_FORMAT=text`` (as before) or ``json``.

json: one object per line, built with orjson, for every logger that goes through ``logging``
(ours, Faust, mode, aiokafka, and librdkafka via :class:`streams.kafka.LibrdkafkaLog`)::

    {"time": "2026-02-01T12:00:00.123Z", "level": "INFO", "logger": "engagement",
     "message": "worker settings: ...", "process": 4242, "component": "worker"}

plus ``exception`` (the formatted traceback) when there is one. Secrets are masked before any
formatter sees a record (:mod:`streams.redaction`).

Faust's worker (mode) replaces the root handlers when it starts: :func:`worker_logging_config`
is the ``logging_config`` it is given, so the same format holds after that.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson

from streams.settings import Settings

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """A record as one line of JSON (no newline inside: orjson escapes them)."""

    def __init__(self, component: str = "worker") -> None:
        super().__init__()
        self.component = component

    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created, UTC)
        line: dict[str, Any] = {
            "time": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
            "component": self.component,
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = record.stack_info
        return orjson.dumps(line, default=str).decode()


def formatter(settings: Settings, component: str = "worker") -> logging.Formatter:
    """The formatter ENGAGEMENT_LOG_FORMAT asks for (text names the component if not worker)."""
    if settings.log_format == "json":
        return JsonFormatter(component)
    suffix = "" if component == "worker" else f"[{component}]"
    return logging.Formatter(TEXT_FORMAT.replace("%(name)s:", f"%(name)s{suffix}:"))


def setup_logging(
    settings: Settings, component: str = "worker", stream: TextIO | None = None
) -> None:
    """Root logger at ENGAGEMENT_LOG_LEVEL with one handler on ``stream`` (default stderr)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter(settings, component))
    root = logging.getLogger()
    root.handlers.clear()
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())


def worker_logging_config(settings: Settings) -> dict[str, Any] | None:
    """``logging_config`` for Faust's worker: None (its own text format) or the JSON one."""
    if settings.log_format != "json":
        return None
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stdout",
            }
        },
        "root": {"level": settings.log_level.upper(), "handlers": ["default"]},
    }
