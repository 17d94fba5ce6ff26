"""Helpers for checking the monitoring files: the rules, their tests and the Grafana dashboard.

- :func:`promql_expressions` lists every PromQL expression they contain (recording rules, alerts,
  dashboard targets with the dashboard's variables replaced by their defaults).
- :class:`PrometheusServer` runs a real ``prometheus`` with our rules, scraping given targets.
- :func:`assert_all_expressions_evaluate` sends every expression to such a server.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
FILES = ROOT / "helm" / "engagement-stream" / "files"
RULES_FILE = FILES / "rules" / "engagement.rules.yml"
RULE_TESTS_FILE = FILES / "rules" / "tests" / "engagement.rules.test.yml"
DASHBOARD_FILE = FILES / "dashboards" / "engagement.json"
RATE_INTERVAL = "1m"  # what $__rate_interval becomes outside Grafana


def load_rules() -> list[dict[str, Any]]:
    """Every rule of every group in the rules file."""
    doc = yaml.safe_load(RULES_FILE.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def load_dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD_FILE.read_text()))


def iter_panels(panels: Sequence[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Panels, with those nested in (collapsed) rows."""
    for panel in panels:
        yield panel
        yield from iter_panels(panel.get("panels", []))


def variable_defaults(dashboard: dict[str, Any]) -> dict[str, str]:
    """Each variable's default: ``.*`` for "All"/multi-value ones, else its current value."""
    defaults: dict[str, str] = {"__rate_interval": RATE_INTERVAL}
    for var in dashboard["templating"]["list"]:
        if var["type"] == "datasource":
            continue
        if var.get("includeAll") or var.get("multi"):
            defaults[var["name"]] = var.get("allValue") or ".*"
        else:
            value = var.get("current", {}).get("value") or var.get("query", "")
            defaults[var["name"]] = str(value).split(",")[0]
    return defaults


def substitute(expr: str, defaults: dict[str, str]) -> str:
    """Replace ``$name``, ``${name}`` and ``[[name]]`` as Grafana would with these values."""
    pattern = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")

    def one(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group)
        if name not in defaults:
            raise KeyError(f"unknown dashboard variable {name!r} in {expr!r}")
        return defaults[name]

    return pattern.sub(one, expr)


def promql_expressions() -> list[tuple[str, str]]:
    """``(where, expr)`` for every recording rule, alert and dashboard target."""
    found: list[tuple[str, str]] = []
    for rule in load_rules():
        kind = "record" if "record" in rule else "alert"
        found.append((f"{kind} {rule[kind]}", str(rule["expr"]).strip()))
    dashboard = load_dashboard()
    defaults = variable_defaults(dashboard)
    for panel in iter_panels(dashboard["panels"]):
        for target in panel.get("targets", []):
            where = f"panel {panel['title']!r} target {target['refId']}"
            found.append((where, substitute(target["expr"], defaults)))
    return found


class PrometheusError(RuntimeError):
    """The server did not start, or a query failed."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrometheusServer:
    """A throw-away ``prometheus`` scraping ``targets`` every second, with our rules loaded."""

    def __init__(
        self, targets: Sequence[str], job: str = "engagement-stream", timeout_s: float = 60
    ) -> None:
        self.targets = list(targets)
        self.job = job
        self.timeout_s = timeout_s
        self.binary = shutil.which("prometheus") or "/usr/bin/prometheus"
        self.port = 0
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> PrometheusServer:
        if not Path(self.binary).exists():
            raise PrometheusError(
                f"{self.binary} not found: install the Debian package 'prometheus'"
            )
        self._dir = tempfile.TemporaryDirectory(prefix="engagement-prom-")
        work = Path(self._dir.name)
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(RULES_FILE)],
            "scrape_configs": [
                {"job_name": self.job, "static_configs": [{"targets": self.targets}]}
            ],
        }
        (work / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.port = free_port()
        with (work / "prometheus.log").open("wb") as log:
            self._proc = subprocess.Popen(
                [
                    self.binary,
                    f"--config.file={work / 'prometheus.yml'}",
                    f"--storage.tsdb.path={work / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            self._wait(lambda: self._get("/-/ready") is None, "/-/ready")
            self._wait(self._targets_up, "all targets up")
        except BaseException:
            self.stop()
            raise
        return self

    def _get(self, path: str, params: dict[str, str] | None = None) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        try:
            with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=10) as response:
                return json.loads(response.read()) if path.startswith("/api/") else None
        except urllib.error.HTTPError as exc:  # the API answers errors as JSON too
            if path.startswith("/api/"):
                return json.loads(exc.read())
            raise

    def _targets_up(self) -> bool:
        active = self._get("/api/v1/targets")["data"]["activeTargets"]
        return len(active) == len(self.targets) and all(t["health"] == "up" for t in active)

    def _wait(self, check: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise PrometheusError(f"prometheus exited early:\n{self.log()}")
            try:
                if check():
                    return
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.2)
        raise PrometheusError(f"timed out waiting for {what}:\n{self.log()}")

    def log(self) -> str:
        if self._dir is None:
            return ""
        path = Path(self._dir.name) / "prometheus.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def query(self, expr: str) -> list[Any]:
        """The ``result`` of an instant query now; raises :class:`PrometheusError` on an error."""
        answer = self._get("/api/v1/query", {"query": expr})
        if answer.get("status") != "success":
            raise PrometheusError(f"{expr!r}: {answer.get('errorType')}: {answer.get('error')}")
        return list(answer["data"]["result"])

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def __enter__(self) -> PrometheusServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def assert_all_expressions_evaluate(prom: PrometheusServer) -> dict[str, list[Any]]:
    """Query every expression of :func:`promql_expressions`; fail listing every one that errs."""
    results: dict[str, list[Any]] = {}
    errors: list[str] = []
    for where, expr in promql_expressions():
        try:
            results[where] = prom.query(expr)
        except PrometheusError as exc:
            errors.append(f"{where}: {exc}")
    assert not errors, "expressions that Prometheus rejects:\n" + "\n".join(errors)
    return results
