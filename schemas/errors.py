"""The one exception root of engagement-stream.

    EngagementError
    ├── SettingsError (+ ValueError)      a bad ENGAGEMENT_* value; names the variable
    ├── InvalidEvent (+ ValueError)       input that cannot become a canonical event
    ├── StateDecodeError (+ ValueError)   stored state bytes of an unknown version or shape
    ├── BatchDecodeError (+ ValueError)   an events.by_user record that cannot be read
    ├── BrokerError (+ RuntimeError)      a broker we manage or talk to failed
    │   └── BrokerUnreachable             no broker answered in time, or it refused our login
    ├── DeliveryFailed (+ RuntimeError)   Kafka refused a record for good; names the record
    ├── RegistryUnavailable (+ RuntimeError)  the Schema Registry did not answer a lookup
    └── UsageError (+ ValueError)         a command-line argument a command cannot use

Callers that only know the builtins still catch ``ValueError`` / ``RuntimeError``.
"""

from __future__ import annotations


class EngagementError(Exception):
    """Base class of every error this package raises on purpose."""


class SettingsError(EngagementError, ValueError):
    """A setting read from the environment is missing, malformed or out of range."""

    def __init__(self, variable: str, message: str) -> None:
        super().__init__(f"{variable}: {message}")
        self.variable = variable


class InvalidEvent(EngagementError, ValueError):
    """Input bytes that cannot be turned into a canonical event."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason


class StateDecodeError(EngagementError, ValueError):
    """Stored state of an unknown version or shape.

    ``version``: the version byte found when it is newer than this code reads (written by a
    newer release); ``key`` and ``partition``: where it was found, once known.
    """

    def __init__(
        self,
        message: str,
        *,
        version: int | None = None,
        key: bytes | None = None,
        partition: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.version = version
        self.key = key
        self.partition = partition


class BatchDecodeError(EngagementError, ValueError):
    """An ``events.by_user`` record that cannot be read as a whole; ``reason`` is one of
    :class:`streams.worker.codecs.BatchReason` (the activity stage quarantines the record)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


class BrokerError(EngagementError, RuntimeError):
    """A broker process we manage failed to start, answer or stop, or Kafka failed a request."""


class BrokerUnreachable(BrokerError):
    """No broker of ENGAGEMENT_BROKER answered within ENGAGEMENT_CONNECT_TIMEOUT, or the
    brokers refused the TLS handshake or SASL login (the command exits with status 3)."""


class DeliveryFailed(EngagementError, RuntimeError):
    """Kafka refused a record for a reason retrying cannot fix (and it could not be reduced):
    the worker stops rather than acknowledge the input behind it."""


class UsageError(EngagementError, ValueError):
    """A command-line argument that parses but cannot be used (exit status 2, as argparse's)."""


class RegistryUnavailable(EngagementError, RuntimeError):
    """The Schema Registry could not be asked about a schema id (down, 5xx, timeout): the
    message is not at fault, so it is not dead-lettered; ingest stops before committing it."""
