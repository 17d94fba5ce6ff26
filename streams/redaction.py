"""Secrets never reach a log line, whoever logs it (our code, Faust, aiokafka, mode).

:func:`mask_secrets` installs a log-record factory: every record's message (arguments
applied), exception text and stack are searched for the secret values (the Settings fields
marked ``secret``, see :meth:`streams.settings.Settings.secrets`) and each is replaced by
``***`` before any handler or formatter sees the record. A factory rather than a handler filter
because Faust's worker replaces the root handlers when it sets up logging.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

MASK = "***"


def mask_text(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, MASK)
    return text


def mask_secrets(secrets: Iterable[str]) -> None:
    """From now on, log records of this process show none of ``secrets`` (empty ones and
    repeated calls with the same values are harmless)."""
    values = tuple(sorted({s for s in secrets if s}, key=len, reverse=True))
    if not values:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        _mask_record(record, values)
        return record

    logging.setLogRecordFactory(factory)


def _mask_record(record: logging.LogRecord, secrets: tuple[str, ...]) -> None:
    try:
        message = record.getMessage()
    except Exception:  # a broken format: logging reports it when the record is formatted
        return
    masked = mask_text(message, secrets)
    if masked != message:
        record.msg, record.args = masked, ()
    if record.exc_info and not record.exc_text:
        record.exc_text = mask_text(logging.Formatter().formatException(record.exc_info), secrets)
    if record.stack_info:
        record.stack_info = mask_text(record.stack_info, secrets)
