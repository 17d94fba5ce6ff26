"""Layering: pure logic and the contracts import no Faust, no Kafka client, no clock and nothing
of ``streams``; the worker imports nothing of the tools, the demo or the test bed; nothing
installed imports ``tests``; our generic top-level package names resolve to this repository."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = {
    "faust",
    "mode",
    "aiokafka",
    "confluent_kafka",
    "time",
    "asyncio",
    "streams.worker.app",
    "streams.worker.runtime",
    "prometheus_client",
    "aiohttp",
}
ALLOWED_STREAMS = {"schemas.errors"}
CLOCK_CALLS = {"now", "utcnow", "today", "time", "monotonic", "perf_counter"}


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize(
    "path", _modules("agents/logic") + _modules("schemas"), ids=lambda p: str(p.relative_to(ROOT))
)
def test_pure_layers_import_no_runtime(path: Path) -> None:
    for name in _imports(path):
        top = name.split(".")[0]
        assert name not in FORBIDDEN and top not in FORBIDDEN, f"{path.name} imports {name}"
        assert top != "streams", f"{path.name} imports {name}"
        assert top != "agents" or name.startswith("agents.logic"), f"{path.name} imports {name}"


@pytest.mark.parametrize("path", _modules("agents/logic"), ids=lambda p: p.name)
def test_pure_logic_reads_no_clock(path: Path) -> None:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            if isinstance(owner, ast.Name) and owner.id in {"datetime", "date", "time"}:
                assert node.func.attr not in CLOCK_CALLS, f"{path.name} calls {owner.id}.now()"


@pytest.mark.parametrize("path", _modules("schemas"), ids=lambda p: p.name)
def test_contracts_import_only_contracts(path: Path) -> None:
    for name in _imports(path):
        assert name.split(".")[0] not in {"agents", "streams"}, f"{path.name} imports {name}"


@pytest.mark.parametrize("path", _modules("streams/worker"), ids=lambda p: str(p.relative_to(ROOT)))
def test_worker_imports_no_tools_demo_or_testbed(path: Path) -> None:
    for name in _imports(path):
        for room in ("streams.tools", "streams.demo", "streams.testbed"):
            assert not (name == room or name.startswith(room + ".")), f"{path} imports {name}"


@pytest.mark.parametrize(
    "path",
    _modules("agents") + _modules("schemas") + _modules("streams"),
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_installed_code_imports_no_tests(path: Path) -> None:
    for name in _imports(path):
        assert name.split(".")[0] != "tests", f"{path} imports {name}"


@pytest.mark.parametrize("package", ["agents", "schemas", "streams"])
def test_generic_package_names_resolve_to_this_repository(package: str) -> None:
    module = __import__(package)
    assert module.__file__ is not None
    assert Path(module.__file__).resolve().parent == ROOT / package
