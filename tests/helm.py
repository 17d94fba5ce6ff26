"""Helpers for testing the Helm chart without a cluster: a real ``helm`` binary and its output.

- :func:`helm_binary` finds ``helm`` (``$ENGAGEMENT_HELM``, else the cache) and builds it from
  the Go module proxy when it is missing; it raises rather than letting a test skip.
- :func:`helm` runs it; :func:`render` returns the manifests of ``helm template`` as dicts.
- :func:`settings_values_block` generates the ``config:`` part of ``values.yaml`` from
  :func:`streams.settings.describe`; ``python -m tests.helm --write-values`` rewrites it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from streams.settings import describe

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "helm" / "engagement-stream"
VALUES_FILE = CHART / "values.yaml"
SCHEMA_FILE = CHART / "values.schema.json"
CI_DIR = CHART / "ci"
HELM_VERSION = "v3.22.0"
# helm's own Makefile sets these with -ldflags; `go install` alone would leave its version
# empty and its default Kubernetes version (.Capabilities, lint deprecations) at 1.20.
KUBE_MINOR = "37"
HELM_LDFLAGS = " ".join(
    [
        "-s -w",
        f"-X helm.sh/helm/v3/internal/version.version={HELM_VERSION}",
        "-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1",
        f"-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor={KUBE_MINOR}",
        "-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1",
        f"-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor={KUBE_MINOR}",
    ]
)
KUBE_VERSION = f"1.{KUBE_MINOR}.0"  # the Kubernetes schemas (kubernetes-validate) to check against
BUILD_TIMEOUT = 1800.0  # a cold build of helm takes several minutes on two cores

# Settings the chart renders from dedicated values, not from the generated ``config:`` block:
# broker security from ``kafka.*``, credentials and the API token from existing Secrets.
SASL_ENV = {
    "ENGAGEMENT_SECURITY_PROTOCOL",
    "ENGAGEMENT_SASL_MECHANISM",
    "ENGAGEMENT_SASL_USERNAME",
    "ENGAGEMENT_SASL_PASSWORD",
}
SECRET_ENV = {"ENGAGEMENT_SASL_USERNAME", "ENGAGEMENT_SASL_PASSWORD", "ENGAGEMENT_API_TOKEN"}
NOT_IN_CONFIG = SASL_ENV | SECRET_ENV


def config_settings() -> list[tuple[str, str, str]]:
    """The settings of the generated ``config:`` block (all but the ones above)."""
    return [(env, default, doc) for env, default, doc in describe() if env not in NOT_IN_CONFIG]


# Where the chart's defaults differ from the worker's, and why (shown in values.yaml).
CHART_DEFAULTS = {
    "ENGAGEMENT_STORE": ("rocksdict://", "Chart default rocksdict:// (state on the data volume)."),
    "ENGAGEMENT_DATA_DIR": (
        "/var/lib/engagement-stream",
        "The chart mounts the data volume here (absolute path).",
    ),
    "ENGAGEMENT_ADVERTISED_URL": (
        "",
        "Empty: the chart sets it per pod from the downward API (StatefulSet: "
        "http://$(POD_NAME).<fullname>-headless.<namespace>.svc:<port>; "
        "Deployment: http://$(POD_IP):<port>).",
    ),
    "ENGAGEMENT_WEB_PORT": ("6066", "Also the container port named http."),
    "ENGAGEMENT_REPLICATION_FACTOR": (
        "3",
        "Chart default 3 with ENGAGEMENT_MIN_INSYNC_REPLICAS 2: any one broker may fail without "
        "losing an acknowledged write or stopping the pipeline.",
    ),
    "ENGAGEMENT_MIN_INSYNC_REPLICAS": ("2", "Chart default 2 (with a replication factor of 3)."),
}
BEGIN, END = "  # settings:start", "  # settings:end"

# values.schema.json: what each setting's string must look like (the worker parses it again).
_DURATION = {"pattern": r"^\s*[0-9]+(\.[0-9]+)?\s*(ms|s|m|h|d)?\s*$"}
_COUNT = {"pattern": "^[1-9][0-9]*$"}
_REPLICAS = {"pattern": "^(-1|[1-9][0-9]?)$"}  # -1: the brokers' default
_NUMBER = {"pattern": r"^[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?$"}
SCHEMA_RULES: dict[str, dict[str, Any]] = {
    "ENGAGEMENT_BROKER": {
        "pattern": r"^kafka://[^\s/:,]+(:[0-9]+)?(\s*,\s*kafka://[^\s/:,]+(:[0-9]+)?)*$"
    },
    "ENGAGEMENT_APP_ID": {"minLength": 1},
    "ENGAGEMENT_SCHEMA_REGISTRY_URL": {"pattern": r"^(https?://[^\s/]+(/\S*)?)?$"},
    "ENGAGEMENT_INPUT_TOPIC": {"minLength": 1},
    "ENGAGEMENT_INPUT_KEYED_BY_USER": {
        "pattern": "^(true|false|True|False|TRUE|FALSE|1|0|yes|no|on|off)$"
    },
    "ENGAGEMENT_TOPIC_PREFIX": {"minLength": 1},
    "ENGAGEMENT_PARTITIONS": _COUNT,
    "ENGAGEMENT_REPLICATION_FACTOR": _REPLICAS,
    "ENGAGEMENT_MIN_INSYNC_REPLICAS": _REPLICAS,
    "ENGAGEMENT_STORE": {"enum": ["memory://", "rocksdict://"]},
    "ENGAGEMENT_DATA_DIR": {"pattern": "^/"},
    "ENGAGEMENT_WEB_PORT": {"pattern": "^[1-9][0-9]{0,4}$"},
    "ENGAGEMENT_CLOCK": {"enum": ["wall", "event"]},
    "ENGAGEMENT_ALLOWED_LATENESS": _DURATION,
    "ENGAGEMENT_MAX_FUTURE_SKEW": _DURATION,
    "ENGAGEMENT_DORMANT_AFTER": _DURATION,
    "ENGAGEMENT_CHURNED_AFTER": _DURATION,
    "ENGAGEMENT_DISCARD_AFTER": _DURATION,
    "ENGAGEMENT_ALIVE_THRESHOLD": _NUMBER,
    "ENGAGEMENT_MODEL_R": _NUMBER,
    "ENGAGEMENT_MODEL_ALPHA": _NUMBER,
    "ENGAGEMENT_MODEL_A": _NUMBER,
    "ENGAGEMENT_MODEL_B": _NUMBER,
    "ENGAGEMENT_MODEL_REFIT": {"pattern": r"^(off|\s*[0-9]+(\.[0-9]+)?\s*(ms|s|m|h|d)?\s*)$"},
    "ENGAGEMENT_MODEL_REFIT_MIN_USERS": _COUNT,
    "ENGAGEMENT_HORIZON_DAYS": _COUNT,
    "ENGAGEMENT_AGGREGATE_DAYS": _COUNT,
    "ENGAGEMENT_MAX_MESSAGE_BYTES": _COUNT,
    "ENGAGEMENT_RECORD_MAX_BYTES": _COUNT,
    "ENGAGEMENT_INGEST_BATCH": _COUNT,
    "ENGAGEMENT_INGEST_PROCESS": {"enum": ["auto", "true", "false"]},
    "ENGAGEMENT_TICK_INTERVAL": _DURATION,
    "ENGAGEMENT_DURABLE_TIMEOUT": _DURATION,
    "ENGAGEMENT_SESSION_TIMEOUT": _DURATION,
    "ENGAGEMENT_LOG_LEVEL": {"enum": ["debug", "info", "warning", "error"]},
    "ENGAGEMENT_LOG_FORMAT": {"enum": ["text", "json"]},
    "ENGAGEMENT_CONNECT_TIMEOUT": _DURATION,
}


def cache_dir() -> Path:
    return Path.home() / ".cache" / "engagement-stream"


def build_command() -> list[str]:
    """The ``go install`` that builds helm into ``$GOBIN`` (also the Makefile's helm-bin)."""
    package = f"helm.sh/helm/v3/cmd/helm@{HELM_VERSION}"
    return ["go", "install", "-trimpath", "-ldflags", HELM_LDFLAGS, package]


def helm_binary() -> Path:
    """``$ENGAGEMENT_HELM``, else ``~/.cache/engagement-stream/bin/helm``; built with
    ``go install`` (into that directory) when missing. Raises if it cannot be had."""
    path = Path(os.environ.get("ENGAGEMENT_HELM") or cache_dir() / "bin" / "helm")
    if path.is_file():
        return path
    if path.name != "helm":
        raise RuntimeError(f"{path} is missing (go install can only build a binary named helm)")
    if shutil.which("go") is None:
        raise RuntimeError(f"{path} is missing and Go is not installed to build it (make helm-bin)")
    path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "GOBIN": str(path.parent.resolve()), "CGO_ENABLED": "0"}
    done = subprocess.run(
        build_command(), env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False
    )
    if done.returncode != 0 or not path.is_file():
        raise RuntimeError(f"building helm {HELM_VERSION} failed:\n{done.stderr[-4000:]}")
    return path


@dataclass(frozen=True)
class HelmResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def helm(*args: str, timeout: float = 120.0) -> HelmResult:
    """Run helm with ``args`` (never raises on a non-zero exit: tests assert on it)."""
    done = subprocess.run(
        [str(helm_binary()), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, "HELM_CACHE_HOME": str(cache_dir() / "helm-home")},
    )
    return HelmResult(done.returncode, done.stdout, done.stderr)


def values_args(values_files: Sequence[Path] = (), sets: Sequence[str] = ()) -> list[str]:
    args: list[str] = []
    for path in values_files:
        args += ["-f", str(path)]
    for item in sets:
        args += ["--set", item]
    return args


def template(
    values_files: Sequence[Path] = (), sets: Sequence[str] = (), namespace: str = "engagement"
) -> HelmResult:
    return helm(
        "template",
        "engagement",
        str(CHART),
        "--namespace",
        namespace,
        *values_args(values_files, sets),
    )


def render(values_files: Sequence[Path] = (), sets: Sequence[str] = ()) -> list[dict[str, Any]]:
    """The manifests ``helm template`` renders, or AssertionError with helm's message."""
    result = template(values_files, sets)
    if result.returncode != 0:
        raise AssertionError(f"helm template failed:\n{result.output}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def by_kind(manifests: Sequence[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in manifests if doc.get("kind") == kind]


def one(manifests: Sequence[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = by_kind(manifests, kind)
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def workload(manifests: Sequence[dict[str, Any]]) -> dict[str, Any]:
    found = [m for m in manifests if m["kind"] in {"StatefulSet", "Deployment"}]
    assert len(found) == 1, f"expected one workload, found {[m['kind'] for m in found]}"
    return found[0]


def ci_values_files() -> list[Path]:
    return sorted(CI_DIR.glob("*-values.yaml"))


def settings_values_block() -> str:
    """The ``config:`` entries of values.yaml: every setting, its meaning and default."""
    lines: list[str] = []
    for env, default, doc in config_settings():
        value, note = CHART_DEFAULTS.get(env, (default, ""))
        text = f"{doc} {note}".strip()
        lines += textwrap.wrap(text, width=96, initial_indent="  # ", subsequent_indent="  #   ")
        if value != default:
            lines.append(f"  #   (worker default: {json.dumps(default)})")
        lines.append(f"  {env}: {json.dumps(value)}")
    return "\n".join(lines)


def config_schema() -> dict[str, Any]:
    """``properties.config`` of values.schema.json: exactly the settings, each a string."""
    properties = {}
    for env, _, doc in config_settings():
        properties[env] = {"description": doc, "type": "string", **SCHEMA_RULES.get(env, {})}
    return {
        "description": "ENGAGEMENT_* settings of the worker (strings: environment variables)",
        "type": "object",
        "additionalProperties": False,
        "required": ["ENGAGEMENT_BROKER", "ENGAGEMENT_APP_ID", "ENGAGEMENT_DATA_DIR"],
        "properties": properties,
    }


def write_schema_config() -> None:
    schema = json.loads(SCHEMA_FILE.read_text())
    schema["properties"]["config"] = config_schema()
    SCHEMA_FILE.write_text(json.dumps(schema, indent=2) + "\n")


def _split_values(text: str) -> tuple[str, str, str]:
    head, sep, rest = text.partition(BEGIN + "\n")
    body, sep2, tail = rest.partition(END + "\n")
    if not sep or not sep2:
        raise ValueError(f"{VALUES_FILE} lacks the {BEGIN.strip()} / {END.strip()} markers")
    return head, body, tail


def values_settings_block() -> str:
    """The generated block as it is in values.yaml now."""
    return _split_values(VALUES_FILE.read_text())[1].rstrip("\n")


def write_values_block() -> None:
    head, _, tail = _split_values(VALUES_FILE.read_text())
    VALUES_FILE.write_text(f"{head}{BEGIN}\n{settings_values_block()}\n{END}\n{tail}")


def iter_env_names(manifests: Sequence[dict[str, Any]]) -> Iterator[str]:
    """ENGAGEMENT_* names a render sets: its envFrom ConfigMap's keys and the container env."""
    for container in workload(manifests)["spec"]["template"]["spec"]["containers"]:
        sources = {s["configMapRef"]["name"] for s in container.get("envFrom", [])}
        for doc in manifests:
            if doc["kind"] == "ConfigMap" and doc["metadata"]["name"] in sources:
                yield from (k for k in doc.get("data", {}) if k.startswith("ENGAGEMENT_"))
        yield from (e["name"] for e in container.get("env", []) if e["name"].startswith("ENGAG"))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.helm", description=__doc__)
    parser.add_argument("--write-values", action="store_true", help="regenerate values.yaml")
    parser.add_argument("--binary", action="store_true", help="print (build) the helm binary")
    args = parser.parse_args(argv)
    if args.write_values:
        write_values_block()
        write_schema_config()
    if args.binary:
        print(helm_binary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
