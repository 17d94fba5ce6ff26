"""Certificates and SASL_SSL settings for a test Kafka broker (``KafkaBroker(security=...)``).

:func:`generate_tls` writes a throw-away CA, a broker certificate for loopback and a client
certificate with the ``openssl`` command line (PEM files, unencrypted PKCS#8 keys: Kafka 4
reads them with ``ssl.keystore.type=PEM``). :class:`SaslSsl` describes one ``SASL_SSL``
listener with SCRAM-SHA-512 and PLAIN users; the broker class turns it into properties and
``kafka-storage format --add-scram`` arguments. For tests and demos only: real clusters get
their certificates and credentials from their operators.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from schemas.errors import BrokerError

BROKER_USER = "broker"  # the identity the broker uses to talk to itself (inter-broker)
DAYS_VALID = "2"


@dataclass(frozen=True)
class TlsFiles:
    """PEM files: the CA, the broker's key and chain, a client's key and certificate."""

    ca_cert: Path
    broker_keystore: Path  # private key + certificate, for ssl.keystore.type=PEM
    client_cert: Path
    client_key: Path


def _openssl(*args: str, cwd: Path) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise BrokerError("openssl is not installed; it is needed to make test certificates")
    done = subprocess.run(
        [openssl, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    if done.returncode != 0:
        raise BrokerError(f"openssl {args[0]} failed: {done.stderr.strip()[-500:]}")


def _issue(directory: Path, name: str, subject: str, san: str) -> tuple[Path, Path]:
    """A key and a certificate signed by ``ca.pem`` in ``directory``; (cert, key)."""
    key, csr, cert = (directory / f"{name}{ext}" for ext in (".key", ".csr", ".pem"))
    ext = directory / f"{name}.ext"
    ext.write_text(
        f"subjectAltName={san}\nbasicConstraints=CA:FALSE\n"
        "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\n",
        encoding="utf-8",
    )
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-out", key.name, cwd=directory)  # fmt: skip
    _openssl("req", "-new", "-key", key.name, "-subj", subject, "-out", csr.name, cwd=directory)
    _openssl("x509", "-req", "-in", csr.name, "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", DAYS_VALID, "-sha256", "-extfile", ext.name,
             "-out", cert.name, cwd=directory)  # fmt: skip
    return cert, key


def generate_tls(directory: Path, hosts: tuple[str, ...] = ("127.0.0.1", "localhost")) -> TlsFiles:
    """A CA, a broker certificate valid for ``hosts`` and a client certificate, in PEM."""
    directory.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", "ca.key", "-out", "ca.pem", "-days", DAYS_VALID,
             "-subj", "/CN=engagement-test-ca", cwd=directory)  # fmt: skip
    san = ",".join(f"IP:{h}" if h[0].isdigit() else f"DNS:{h}" for h in hosts)
    broker_cert, broker_key = _issue(directory, "broker", "/CN=broker", san)
    client_cert, client_key = _issue(directory, "client", "/CN=engagement-client", "DNS:client")
    keystore = directory / "broker-keystore.pem"
    keystore.write_text(
        broker_key.read_text(encoding="utf-8") + broker_cert.read_text(encoding="utf-8"),
        encoding="utf-8",
    )
    for path in (broker_key, client_key, keystore, directory / "ca.key"):
        path.chmod(0o600)
    return TlsFiles(directory / "ca.pem", keystore, client_cert, client_key)


def _jaas_quote(text: str) -> str:
    if '"' in text or "\\" in text:
        raise BrokerError("test credentials must not contain quotes or backslashes")
    return f'"{text}"'


@dataclass(frozen=True)
class SaslSsl:
    """One ``SASL_SSL`` listener: TLS with ``tls``, SCRAM-SHA-512 and PLAIN users.

    ``scram_users`` are created at format time (``--add-scram``); ``plain_users`` live in the
    listener's JAAS configuration. The broker authenticates to itself as :data:`BROKER_USER`.
    """

    tls: TlsFiles
    scram_users: dict[str, str] = field(default_factory=dict)
    plain_users: dict[str, str] = field(default_factory=dict)
    broker_password: str = "broker-secret"

    def listener_properties(self, bootstrap: str, controller: str) -> dict[str, str]:
        """server.properties entries: clients and the broker itself on ``SASL_SSL``, the
        controller on its own loopback listener."""
        scram = "org.apache.kafka.common.security.scram.ScramLoginModule"
        plain_users = {BROKER_USER: self.broker_password, **self.plain_users}
        plain = " ".join(f"user_{u}={_jaas_quote(p)}" for u, p in plain_users.items())
        me = f"username={_jaas_quote(BROKER_USER)} password={_jaas_quote(self.broker_password)}"
        return {
            "listeners": f"SASL_SSL://{bootstrap},CONTROLLER://{controller}",
            "advertised.listeners": f"SASL_SSL://{bootstrap},CONTROLLER://{controller}",
            "inter.broker.listener.name": "SASL_SSL",
            "listener.security.protocol.map": "SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT",
            "sasl.enabled.mechanisms": "SCRAM-SHA-512,PLAIN",
            "sasl.mechanism.inter.broker.protocol": "SCRAM-SHA-512",
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": f"{scram} required {me};",
            "listener.name.sasl_ssl.plain.sasl.jaas.config": (
                f"org.apache.kafka.common.security.plain.PlainLoginModule required {me} {plain};"
            ),
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(self.tls.broker_keystore),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(self.tls.ca_cert),
            "ssl.client.auth": "none",
        }

    def format_arguments(self) -> list[str]:
        """``--add-scram`` arguments for ``kafka-storage format`` (the broker's user too)."""
        users = {BROKER_USER: self.broker_password, **self.scram_users}
        return [
            arg
            for name, password in users.items()
            for arg in ("--add-scram", f"SCRAM-SHA-512=[name={name},password={password}]")
        ]

    def client_config(
        self, username: str, password: str, mechanism: str = "SCRAM-SHA-512"
    ) -> dict[str, Any]:
        """librdkafka settings for a client of this listener."""
        return {
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": mechanism,
            "sasl.username": username,
            "sasl.password": password,
            "ssl.ca.location": str(self.tls.ca_cert),
        }
