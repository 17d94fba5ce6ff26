"""Secrets never reach a log line, whoever logs it (our code, Faust, aiokafka, mode).

:func:`mask_secrets` installs a log-record factory: every record's message (arguments
applied), exception text and stack are searched for the secret values (the Settings fields
marked ``secret``, see :meth:`streams.settings.Settings.secrets`) and each is replaced by
``***`` before any handler or formatter sees the record. A factory rather than a handler filter
because Faust's worker replaces the root handlers when it sets up logging.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

MASK = "***"


def mask_text(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, MASK)
    return text


def mask_secrets(secrets: Iterable[str]) -> None:
    """From now on, log records of this process show none of ``secrets`` (empty values are
    ignored; calling it again adds to the secrets already masked)."""
    values = {s for s in secrets if s}
    if not values:
        return
    current = logging.getLogRecordFactory()
    if isinstance(current, _MaskingFactory):
        current.add(values)
    else:
        logging.setLogRecordFactory(_MaskingFactory(current, values))


class _MaskingFactory:
    """A log-record factory that masks the secrets in what ``previous`` builds."""

    def __init__(self, previous: Callable[..., logging.LogRecord], secrets: set[str]) -> None:
        self.previous = previous
        self.secrets: tuple[str, ...] = ()
        self.add(secrets)

    def add(self, secrets: set[str]) -> None:
        self.secrets = tuple(sorted(set(self.secrets) | secrets, key=len, reverse=True))

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = self.previous(*args, **kwargs)
        _mask_record(record, self.secrets)
        return record


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
