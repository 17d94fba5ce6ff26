"""Every ``engagement`` command, run as a subprocess, fails the documented way: exactly one line
on stderr, the exit status of :mod:`streams.exits`, no traceback, within seconds. The
unreachable broker is a closed local port; no broker is started."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agents.logic.funnels import ACTIVATION_FUNNEL
from streams import exits
from streams.cli import build_parser
from streams.testbed.brokers import free_port

ROOT = Path(__file__).resolve().parents[2]
CONNECT_TIMEOUT_S = 1.0
LIMIT_S = 30.0  # interpreter start and imports (Faust for the worker) on a busy 2-core machine

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def closed_port() -> int:
    return free_port()  # bound and released: nothing listens there


def run_cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("ENGAGEMENT_")}
    base["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        env={**base, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


UNREACHABLE, FILE, USAGE = exits.BROKER_UNREACHABLE, exits.FILE_UNREADABLE, exits.USAGE
FAILURE = exits.FAILURE
# (id, arguments, environment, expected status); upper-case words are filled in per test.
CASES: list[tuple[str, list[str], dict[str, str], int]] = [
    ("worker-broker", ["worker"], {}, UNREACHABLE),
    ("worker-model-file", ["worker"], {"ENGAGEMENT_MODEL_FILE": "MISSING"}, FILE),
    ("signals-broker", ["signals", "--kind", "dormant", "churned"], {}, UNREACHABLE),
    ("signals-bad-kind", ["signals", "--kind", "sleepy"], {}, USAGE),
    ("dead-letters-broker", ["dead-letters"], {}, UNREACHABLE),
    ("dead-letters-replay-broker", ["dead-letters", "--replay", "--reason", "empty"], {}, 3),
    ("dead-letters-replay-no-reason", ["dead-letters", "--replay"], {}, USAGE),
    ("fit-state-broker", ["fit", "--from-state"], {}, UNREACHABLE),
    ("fit-events-missing", ["fit", "--events", "MISSING"], {}, FILE),
    ("retention-broker", ["retention", "--format", "csv"], {}, UNREACHABLE),
    ("retention-bad-now", ["retention", "--now", "someday"], {}, USAGE),
    ("funnel-broker", ["funnel"], {"ENGAGEMENT_FUNNELS": ACTIVATION_FUNNEL}, UNREACHABLE),
    ("funnel-none-declared", ["funnel", "--format", "csv"], {}, USAGE),
    ("funnel-bad-setting", ["funnel"], {"ENGAGEMENT_FUNNELS": "[{}]"}, USAGE),
    ("publish-missing", ["publish", "MISSING"], {}, FILE),
    ("publish-broker", ["publish", "EVENTS"], {}, UNREACHABLE),
    ("simulate-broker", ["simulate", "--users", "5", "--days", "2"], {}, UNREACHABLE),
    ("simulate-out-missing", ["simulate", "--out", "NODIR"], {}, FILE),
    ("demo-broker", ["demo", "--bootstrap", "BOOTSTRAP"], {}, UNREACHABLE),
    ("uplift-worker", ["uplift", "--metrics", "METRICS"], {}, FAILURE),
    ("settings-bad-value", ["settings"], {"ENGAGEMENT_LOG_FORMAT": "xml"}, USAGE),
    ("bench-kafka-lib-missing", ["bench", "--kafka-lib", "NOLIB"], {}, FILE),
    ("broker-bad-port", ["broker", "--port", "x"], {}, USAGE),
    ("unknown-command", ["frobnicate"], {}, USAGE),
]


def fill(text: str, tmp: Path, bootstrap: str) -> str:
    events = tmp / "events.jsonl"
    events.write_text('{"user_id": "u1", "event_type": "click", "timestamp": 1}\n')
    places = {
        "MISSING": str(tmp / "missing.jsonl"),
        "EVENTS": str(events),
        "NODIR": str(tmp / "no" / "x.jsonl"),
        "NOLIB": str(tmp / "nolib"),
        "BOOTSTRAP": bootstrap,
        "METRICS": f"http://{bootstrap}/metrics",  # a worker that does not answer
    }
    return places.get(text, text)


@pytest.mark.parametrize(
    ("args", "env", "status"), [case[1:] for case in CASES], ids=[case[0] for case in CASES]
)
def test_a_failing_command_says_one_line_and_exits_with_its_code(
    args: list[str], env: dict[str, str], status: int, closed_port: int, tmp_path: Path
) -> None:
    bootstrap = f"127.0.0.1:{closed_port}"
    environment = {
        "ENGAGEMENT_BROKER": f"kafka://{bootstrap}",
        "ENGAGEMENT_CONNECT_TIMEOUT": f"{CONNECT_TIMEOUT_S}s",
        "ENGAGEMENT_DATA_DIR": str(tmp_path / "data"),
        **{name: fill(value, tmp_path, bootstrap) for name, value in env.items()},
    }
    began = time.monotonic()
    done = run_cli([fill(a, tmp_path, bootstrap) for a in args], environment, tmp_path)
    took = time.monotonic() - began
    lines = done.stderr.splitlines()
    assert "Traceback" not in done.stderr + done.stdout
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("engagement"), lines[0]
    assert done.returncode == status, done.stderr
    assert took < LIMIT_S


def test_every_command_has_a_failure_case() -> None:
    action = build_parser()._subparsers._group_actions[0]  # type: ignore[union-attr]
    commands = set(action.choices or ())
    assert commands <= {case[1][0] for case in CASES}
