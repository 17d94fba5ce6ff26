"""The exit statuses of every ``engagement`` command, and the one line that explains a failure.

=====  ==================  ===================================================================
code   name                meaning
=====  ==================  ===================================================================
0      OK                  done
1      FAILURE             the command ran and failed (records not delivered, numbers differ)
2      USAGE               a bad argument (argparse's own code) or a bad ENGAGEMENT_* setting
3      BROKER_UNREACHABLE  no Kafka broker answered within ENGAGEMENT_CONNECT_TIMEOUT, or the
                           brokers refused the TLS handshake or the SASL login
4      FILE_UNREADABLE     a file named on the command line or by a setting is missing or
                           unreadable, or an output file cannot be written
70     FAIL_STOP           the worker stopped on purpose on something it cannot handle safely
                           (unreadable state, Kafka not acknowledging in time); restart it
130    INTERRUPTED         Ctrl-C
=====  ==================  ===================================================================

:func:`explain` turns an exception that reached the top of a command into (status, one line);
the CLI prints the line on stderr, never a traceback (ENGAGEMENT_LOG_LEVEL=debug logs it).
"""

from __future__ import annotations

from schemas.errors import BrokerUnreachable, EngagementError, SettingsError, UsageError

OK = 0
FAILURE = 1
USAGE = 2
BROKER_UNREACHABLE = 3
FILE_UNREADABLE = 4
FAIL_STOP = 70  # EX_SOFTWARE: the orchestrator restarts the worker
INTERRUPTED = 130

TABLE: tuple[tuple[int, str], ...] = (
    (OK, "done"),
    (FAILURE, "the command ran and failed (e.g. records not delivered, numbers that differ)"),
    (USAGE, "a bad argument or a bad ENGAGEMENT_* setting (the line names it)"),
    (
        BROKER_UNREACHABLE,
        "no Kafka broker answered within ENGAGEMENT_CONNECT_TIMEOUT, or the brokers refused "
        "the TLS handshake or the SASL login",
    ),
    (FILE_UNREADABLE, "a file to read is missing or unreadable, or a file cannot be written"),
    (FAIL_STOP, "the worker stopped on something it cannot handle safely; restart it"),
    (INTERRUPTED, "interrupted (Ctrl-C)"),
)

# librdkafka's codes for "could not talk to any broker": KafkaError._TRANSPORT,
# _ALL_BROKERS_DOWN, _RESOLVE, _TIMED_OUT, _AUTHENTICATION, _SSL (numbers: no import needed).
_UNREACHABLE_KAFKA_CODES = {-195, -187, -193, -185, -169, -181}


def explain(exc: BaseException) -> tuple[int, str]:
    """(exit status, one line without the ``engagement:`` prefix) for ``exc``."""
    if isinstance(exc, SettingsError):
        return USAGE, f"invalid setting {exc}"
    if isinstance(exc, UsageError):
        return USAGE, str(exc)
    if isinstance(exc, BrokerUnreachable):
        return BROKER_UNREACHABLE, str(exc)
    if isinstance(exc, EngagementError):
        return FAILURE, str(exc)
    if isinstance(exc, OSError) and exc.filename is not None:
        return FILE_UNREADABLE, f"{exc.filename}: {exc.strerror or exc}"
    code = _kafka_code(exc)
    if code is not None:
        status = BROKER_UNREACHABLE if code in _UNREACHABLE_KAFKA_CODES else FAILURE
        return status, f"Kafka: {_one_line(str(exc.args[0]))}"
    return FAILURE, f"unexpected error: {type(exc).__name__}: {_one_line(str(exc))}"


def _kafka_code(exc: BaseException) -> int | None:
    """The librdkafka error code of a ``confluent_kafka.KafkaException`` (None otherwise)."""
    if type(exc).__name__ != "KafkaException" or not exc.args:
        return None
    code = getattr(exc.args[0], "code", None)
    return int(code()) if callable(code) else None


def _one_line(text: str) -> str:
    return " ".join(text.split()) or "(no message)"
