"""The Helm chart, checked without a cluster: a real ``helm`` lints and renders it for the default
values and every ``ci/*-values.yaml`` scenario, and the manifests are validated against the
Kubernetes JSON schemas (kubernetes-validate, offline) and our own checks for the CRDs.

Needs ``helm`` (built from the Go module proxy by tests/helm.py when missing) and Go to build
it; without them these tests fail, never skip.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]  # no py.typed; only .validate used
import pytest
import yaml

from streams.settings import Settings, describe
from tests.helm import (
    CHART,
    KUBE_VERSION,
    NOT_IN_CONFIG,
    SCHEMA_FILE,
    VALUES_FILE,
    by_kind,
    ci_values_files,
    config_schema,
    helm,
    iter_env_names,
    one,
    render,
    settings_values_block,
    template,
    values_args,
    values_settings_block,
    workload,
)
from tests.monitoring import DASHBOARD_FILE, RULES_FILE

ROOT = CHART.parent.parent
SCENARIOS = {"default": None, **{p.name.removesuffix("-values.yaml"): p for p in ci_values_files()}}
EXPECTED_SCENARIOS = {"statefulset-rocksdb", "deployment", "monitoring", "keda", "sasl-secret"}
CRD_KINDS = {"ServiceMonitor", "PrometheusRule", "ScaledObject", "TriggerAuthentication"}
SETTINGS_ENV = {env for env, _, _ in describe()}


def files_of(name: str) -> list[Path]:
    path = SCENARIOS[name]
    return [] if path is None else [path]


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict[str, Any]]]:
    return {name: render(files_of(name)) for name in SCENARIOS}


def write_values(tmp_path: Path, values: dict[str, Any]) -> Path:
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def container(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    containers = workload(manifests)["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["worker"]
    return dict(containers[0])


# --- helm lint / template over every scenario, Kubernetes schemas ---------------------------------


def test_every_ci_scenario_exists() -> None:
    assert set(SCENARIOS) - {"default"} >= EXPECTED_SCENARIOS


def test_helm_is_the_pinned_version() -> None:
    result = helm("version", "--short")
    assert result.returncode == 0, result.output
    assert result.stdout.startswith("v3.22.0"), result.stdout


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_helm_lint_passes(scenario: str) -> None:
    result = helm("lint", "--strict", str(CHART), *values_args(files_of(scenario)))
    assert result.returncode == 0, result.output
    assert "0 chart(s) failed" in result.output


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_manifests_validate_against_kubernetes_schemas(
    rendered: dict[str, list[dict[str, Any]]], scenario: str
) -> None:
    for doc in rendered[scenario]:
        if doc["kind"] in CRD_KINDS:
            check_crd(doc)
        else:
            kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)


def check_crd(doc: dict[str, Any]) -> None:
    """The fields the operators require (their CRDs are not in kubernetes-validate)."""
    assert doc["metadata"]["name"] and doc["metadata"]["namespace"]
    spec = doc["spec"]
    if doc["kind"] == "ServiceMonitor":
        assert doc["apiVersion"] == "monitoring.coreos.com/v1"
        assert spec["selector"]["matchLabels"]
        assert spec["endpoints"] and all(e["port"] for e in spec["endpoints"])
    elif doc["kind"] == "PrometheusRule":
        assert doc["apiVersion"] == "monitoring.coreos.com/v1"
        for group in spec["groups"]:
            assert group["name"] and group["rules"]
            for rule in group["rules"]:
                assert rule["expr"] and (("record" in rule) != ("alert" in rule)), rule
    elif doc["kind"] == "ScaledObject":
        assert doc["apiVersion"] == "keda.sh/v1alpha1"
        assert spec["scaleTargetRef"]["name"] and spec["triggers"]
        assert 0 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
        for trigger in spec["triggers"]:
            assert trigger["type"] == "kafka"
            meta = trigger["metadata"]
            assert all(meta[k] for k in ("bootstrapServers", "consumerGroup", "topic"))
            assert all(isinstance(v, str) for v in meta.values()), "KEDA metadata are strings"
    else:
        assert doc["apiVersion"] == "keda.sh/v1alpha1"
        for ref in spec["secretTargetRef"]:
            assert ref["parameter"] and ref["name"] and ref["key"]


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_selectors_are_stable(rendered: dict[str, list[dict[str, Any]]], scenario: str) -> None:
    manifests = rendered[scenario]
    selector = workload(manifests)["spec"]["selector"]["matchLabels"]
    assert set(selector) == {"app.kubernetes.io/name", "app.kubernetes.io/instance"}
    pod_labels = workload(manifests)["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= pod_labels.items()
    for service in by_kind(manifests, "Service"):
        assert service["spec"]["selector"] == selector
    for doc in manifests:
        labels = doc["metadata"]["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "Helm", doc["kind"]
        assert labels["helm.sh/chart"] == "engagement-stream-0.1.0"


# --- the pod: security, probes, shutdown, state ---------------------------------------------------


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_secure_defaults(rendered: dict[str, list[dict[str, Any]]], scenario: str) -> None:
    manifests = rendered[scenario]
    pod = workload(manifests)["spec"]["template"]["spec"]
    worker = container(manifests)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    context = worker["securityContext"]
    assert context["runAsNonRoot"] is True and context["runAsUser"] == 10001
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    # writable: only the data directory and /tmp (an emptyDir)
    mounts = {m["mountPath"]: m["name"] for m in worker["volumeMounts"]}
    data_dir = configmap_data(manifests)["ENGAGEMENT_DATA_DIR"]
    assert mounts == {data_dir: "data", "/tmp": "tmp"}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes["tmp"]
    assert worker["resources"]["requests"] and worker["resources"]["limits"]["memory"]


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_probes_and_shutdown(rendered: dict[str, list[dict[str, Any]]], scenario: str) -> None:
    manifests = rendered[scenario]
    worker = container(manifests)
    assert worker["ports"] == [{"name": "http", "containerPort": 6066, "protocol": "TCP"}]
    assert worker["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert worker["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    startup = worker["startupProbe"]
    assert startup["httpGet"]["path"] == "/healthz"
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300, "room for recovery"
    assert workload(manifests)["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= 60
    web = [s for s in by_kind(manifests, "Service") if s["spec"].get("clusterIP") != "None"]
    assert [p["name"] for p in one(web, "Service")["spec"]["ports"]] == ["http"]
    assert one(web, "Service")["spec"]["ports"][0]["port"] == 6066


def test_statefulset_keeps_rocksdb_state_on_a_volume(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    manifests = rendered["statefulset-rocksdb"]
    sts = one(manifests, "StatefulSet")
    data = configmap_data(manifests)
    assert data["ENGAGEMENT_STORE"] == "rocksdict://"
    [claim] = sts["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data"
    assert claim["spec"]["resources"]["requests"]["storage"] == "20Gi"
    assert sts["spec"]["replicas"] == 3
    headless = [s for s in by_kind(manifests, "Service") if s["spec"].get("clusterIP") == "None"]
    assert sts["spec"]["serviceName"] == one(headless, "Service")["metadata"]["name"]
    assert one(headless, "Service")["spec"]["publishNotReadyAddresses"] is True
    env = {e["name"]: e for e in container(manifests)["env"]}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["ENGAGEMENT_ADVERTISED_URL"]["value"] == (
        f"http://$(POD_NAME).{sts['spec']['serviceName']}.$(POD_NAMESPACE).svc:6066"
    )
    assert "ENGAGEMENT_ADVERTISED_URL" not in data


def test_deployment_uses_an_empty_dir(rendered: dict[str, list[dict[str, Any]]]) -> None:
    manifests = rendered["deployment"]
    assert not by_kind(manifests, "StatefulSet")
    deployment = one(manifests, "Deployment")
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["data"]["emptyDir"] == {"sizeLimit": "5Gi"}
    assert all(s["spec"].get("clusterIP") != "None" for s in by_kind(manifests, "Service"))
    env = {e["name"]: e for e in container(manifests)["env"]}
    assert env["ENGAGEMENT_ADVERTISED_URL"]["value"] == "http://$(POD_IP):6066"
    assert one(manifests, "PodDisruptionBudget")["spec"] == {
        "minAvailable": 1,
        "selector": deployment["spec"]["selector"],
    }


def test_config_checksum_follows_the_config() -> None:
    def checksum(*sets: str) -> str:
        pod = workload(render(sets=sets))["spec"]["template"]
        return str(pod["metadata"]["annotations"]["checksum/config"])

    assert checksum() == checksum()
    assert checksum() != checksum("config.ENGAGEMENT_LOG_LEVEL=debug")


# --- settings: every one can be set, and the defaults are valid -----------------------------------


def configmap_data(manifests: list[dict[str, Any]]) -> dict[str, str]:
    [source] = container(manifests)["envFrom"]
    name = source["configMapRef"]["name"]
    [config] = [m for m in by_kind(manifests, "ConfigMap") if m["metadata"]["name"] == name]
    return dict(config["data"])


def test_values_list_every_setting() -> None:
    values = yaml.safe_load(VALUES_FILE.read_text())
    assert set(values["config"]) == SETTINGS_ENV - NOT_IN_CONFIG
    assert values_settings_block() == settings_values_block(), (
        "values.yaml is out of date: python -m tests.helm --write-values"
    )
    schema = json.loads(SCHEMA_FILE.read_text())
    assert schema["properties"]["config"] == config_schema(), (
        "values.schema.json is out of date: python -m tests.helm --write-values"
    )


def test_chart_renders_exactly_the_settings(rendered: dict[str, list[dict[str, Any]]]) -> None:
    names = {name for manifests in rendered.values() for name in iter_env_names(manifests)}
    assert names == SETTINGS_ENV
    assert set(iter_env_names(rendered["default"])) == SETTINGS_ENV - NOT_IN_CONFIG


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_rendered_settings_are_valid(
    rendered: dict[str, list[dict[str, Any]]], scenario: str
) -> None:
    """What the pod's environment will hold parses as Settings (downward API filled in)."""
    manifests = rendered[scenario]
    environ = configmap_data(manifests)
    for entry in container(manifests)["env"]:
        if "value" in entry:
            environ[entry["name"]] = re.sub(r"\$\((\w+)\)", "x", entry["value"])
        elif "secretKeyRef" in entry.get("valueFrom", {}):
            environ[entry["name"]] = "from-a-secret"
    settings = Settings.from_env({k: v for k, v in environ.items() if k in SETTINGS_ENV})
    assert settings.store == "rocksdict://"
    assert settings.data_dir.startswith("/")
    assert settings.advertised_url.startswith("http://")


def test_sasl_credentials_come_from_the_existing_secret(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    manifests = rendered["sasl-secret"]
    env = {e["name"]: e for e in container(manifests)["env"]}
    for name, key in (
        ("ENGAGEMENT_SASL_USERNAME", "user"),
        ("ENGAGEMENT_SASL_PASSWORD", "password"),
    ):
        assert env[name]["valueFrom"]["secretKeyRef"] == {"name": "kafka-credentials", "key": key}
    data = configmap_data(manifests)
    assert data["ENGAGEMENT_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert data["ENGAGEMENT_SASL_MECHANISM"] == "SCRAM-SHA-512"
    assert not by_kind(manifests, "Secret"), "the chart never holds credentials"
    auth = one(manifests, "TriggerAuthentication")
    assert {r["parameter"]: r["key"] for r in auth["spec"]["secretTargetRef"]} == {
        "username": "user",
        "password": "password",
    }
    for trigger in one(manifests, "ScaledObject")["spec"]["triggers"]:
        assert trigger["metadata"]["sasl"] == "scram_sha512"
        assert trigger["metadata"]["tls"] == "enable"
        assert trigger["authenticationRef"]["name"] == auth["metadata"]["name"]


def test_sasl_secret_without_a_sasl_protocol_fails() -> None:
    result = template(sets=["kafka.sasl.existingSecret=creds", "kafka.sasl.mechanism=PLAIN"])
    assert result.returncode != 0
    assert "kafka.securityProtocol must be SASL_PLAINTEXT or SASL_SSL" in result.output


# --- monitoring: the repository's rules and dashboard, verbatim -----------------------------------


def test_prometheus_rule_is_the_rules_file(rendered: dict[str, list[dict[str, Any]]]) -> None:
    rule = one(rendered["monitoring"], "PrometheusRule")
    assert rule["spec"]["groups"] == yaml.safe_load(RULES_FILE.read_text())["groups"]
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    # the alert templates reach Prometheus untouched (not expanded by helm)
    assert "{{ $value" in yaml.safe_dump(rule["spec"]["groups"], width=1000)


def test_runbook_links_can_point_at_another_readme() -> None:
    base = "https://git.example.com/ops/engagement-stream/-/blob/main/README.md"
    manifests = render(files_of("monitoring"), [f"monitoring.prometheusRule.runbookBaseUrl={base}"])
    rendered_rules = one(manifests, "PrometheusRule")["spec"]["groups"]
    source_rules = yaml.safe_load(RULES_FILE.read_text())["groups"]
    links = [
        (rule["annotations"]["runbook_url"], source["annotations"]["runbook_url"])
        for group, source_group in zip(rendered_rules, source_rules, strict=True)
        for rule, source in zip(group["rules"], source_group["rules"], strict=True)
        if "alert" in rule
    ]
    assert links
    for link, source in links:
        assert link == f"{base}#{source.split('#', 1)[1]}"
    # nothing else changes
    for group in rendered_rules:
        for rule in group["rules"]:
            rule.get("annotations", {}).pop("runbook_url", None)
    for group in source_rules:
        for rule in group["rules"]:
            rule.get("annotations", {}).pop("runbook_url", None)
    assert rendered_rules == source_rules


def test_dashboard_configmap_is_the_dashboard_file(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    dashboards = [m for m in by_kind(rendered["monitoring"], "ConfigMap") if m is not None]
    [board] = [m for m in dashboards if "engagement.json" in m.get("data", {})]
    assert json.loads(board["data"]["engagement.json"]) == json.loads(DASHBOARD_FILE.read_text())
    assert board["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert board["metadata"]["annotations"] == {"grafana_folder": "Engagement"}


def test_service_monitor_scrapes_the_web_service_once(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    manifests = rendered["monitoring"]
    monitor = one(manifests, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    wanted = monitor["spec"]["selector"]["matchLabels"]
    selected = [
        s
        for s in by_kind(manifests, "Service")
        if wanted.items() <= s["metadata"]["labels"].items()
    ]
    assert len(selected) == 1 and selected[0]["spec"].get("clusterIP") != "None"
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "http" and endpoint["path"] == "/metrics"


def test_monitoring_is_off_by_default(rendered: dict[str, list[dict[str, Any]]]) -> None:
    kinds = {m["kind"] for m in rendered["default"]}
    assert not kinds & CRD_KINDS
    assert len(by_kind(rendered["default"], "ConfigMap")) == 1


# --- KEDA: never more workers than partitions -----------------------------------------------------


@pytest.mark.parametrize("scenario", ["keda", "sasl-secret"])
def test_keda_scales_on_the_app_consumer_group(
    rendered: dict[str, list[dict[str, Any]]], scenario: str
) -> None:
    manifests = rendered[scenario]
    scaled = one(manifests, "ScaledObject")
    partitions = int(configmap_data(manifests)["ENGAGEMENT_PARTITIONS"])
    assert scaled["spec"]["maxReplicaCount"] <= partitions
    assert scaled["spec"]["scaleTargetRef"]["name"] == workload(manifests)["metadata"]["name"]
    assert "replicas" not in workload(manifests)["spec"], "the HPA owns the replica count"
    groups = {
        t["metadata"]["consumerGroup"]: t["metadata"]["topic"] for t in scaled["spec"]["triggers"]
    }
    app_id = configmap_data(manifests)["ENGAGEMENT_APP_ID"]
    assert groups == {app_id: "engagement.events.by_user", f"{app_id}-ingest": "user.events"}
    assert {t["metadata"]["allowIdleConsumers"] for t in scaled["spec"]["triggers"]} == {"false"}


def test_keda_above_the_partition_count_fails(tmp_path: Path) -> None:
    values = write_values(
        tmp_path,
        {"config": {"ENGAGEMENT_PARTITIONS": "4"}, "keda": {"enabled": True, "maxReplicas": 5}},
    )
    message = "keda.maxReplicas (5) exceeds config.ENGAGEMENT_PARTITIONS (4)"
    result = template([values])
    assert result.returncode != 0 and message in result.output, result.output
    # helm lint renders leniently (a template's `fail` is reported as [INFO]), but it names it
    lint = helm("lint", str(CHART), "-f", str(values))
    assert message in lint.output, lint.output


# --- the schema rejects bad values with a clear message -------------------------------------------


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"workload": {"kind": "Pod"}},
            "at '/workload/kind': value must be one of 'StatefulSet', 'Deployment'",
        ),
        ({"replicaCount": "3"}, "at '/replicaCount': got string, want integer"),
        (
            {"config": {"ENGAGEMENT_PARTITION": "3"}},
            "additional properties 'ENGAGEMENT_PARTITION' not allowed",
        ),
        (
            {"config": {"ENGAGEMENT_PARTITIONS": 8}},
            "at '/config/ENGAGEMENT_PARTITIONS': got number, want string",
        ),
        ({"config": {"ENGAGEMENT_STORE": "rocksdb://"}}, "at '/config/ENGAGEMENT_STORE'"),
        ({"keda": {"maxReplicas": "8"}}, "at '/keda/maxReplicas': got string, want integer"),
        (
            {"monitoring": {"prometheusRule": {"runbookBaseUrl": "README.md#x"}}},
            "at '/monitoring/prometheusRule/runbookBaseUrl'",
        ),
    ],
)
def test_schema_rejects(tmp_path: Path, values: dict[str, Any], message: str) -> None:
    path = write_values(tmp_path, values)
    result = helm("lint", str(CHART), "-f", str(path))
    assert result.returncode != 0
    assert message in result.output, result.output
    assert "values don't meet the specifications of the schema" in result.output


# --- the container image --------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
        for line in lines
        if line and not line.startswith("#")
    ]


def test_dockerfile_invariants() -> None:
    instructions = dockerfile_instructions()
    args = dict(v.split("=", 1) for k, v in instructions if k == "ARG" and "=" in v)
    base = args["PYTHON_IMAGE"]
    assert base == "python:3.11-slim-bookworm", "pinned base tag"
    stages = [v for k, v in instructions if k == "FROM"]
    assert stages == ["${PYTHON_IMAGE} AS builder", "${PYTHON_IMAGE} AS runtime"]
    last_from = max(i for i, (k, _) in enumerate(instructions) if k == "FROM")
    runtime = instructions[last_from:]
    assert any(
        k == "RUN" and "pip wheel" in v and ".[rocksdb,registry,fit]" in v for k, v in instructions
    )
    assert not any("build-essential" in v for _, v in runtime), "no compiler at runtime"
    users = [v for k, v in runtime if k == "USER"]
    assert users == ["10001:10001"]
    assert instructions[-1] == ("CMD", '["worker"]')
    assert ("ENTRYPOINT", '["engagement"]') in runtime
    assert ("EXPOSE", "6066") in runtime
    # the chart's runAsUser / fsGroup are the image's user
    pod = yaml.safe_load(VALUES_FILE.read_text())["podSecurityContext"]
    assert f"{pod['runAsUser']}:{pod['runAsGroup']}" == users[0]


def test_dockerignore_sends_only_the_package() -> None:
    lines = [
        line
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert lines[0] == "*"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert allowed == {"pyproject.toml", "README.md", "LICENSE", "schemas", "streams", "agents"}
