"""`engagement publish` on each broker: JSON lines and CSV files reach the worker, keyed by
user; a file with a broken line is reported with a non-zero exit and a summary."""

from __future__ import annotations

import io
import time

import orjson
import pytest

from streams.settings import Settings
from streams.tools.publish import publish_command
from tests.integration.conftest import BrokerHandle
from tests.integration.workers import running_worker, wait_metric, worker_env

pytestmark = pytest.mark.integration


def test_files_are_published_and_folded(broker: BrokerHandle, unique_name, tmp_path) -> None:
    env = worker_env(broker, unique_name("publish"))
    settings = Settings.from_env(env)
    now = int(time.time() * 1000)
    jsonl = tmp_path / "events.jsonl"
    jsonl.write_bytes(
        b"\n".join(
            orjson.dumps(
                {
                    "event_id": f"j{i}",
                    "user_id": f"user-{i % 20}",
                    "event_type": "page_view",
                    "timestamp": now - i * 1000,
                }
            )
            for i in range(300)
        )
    )
    csv = tmp_path / "events.csv"
    csv.write_text(
        "event_id,user_id,event_type,timestamp,channel,properties.plan\n"
        + "".join(f"c{i},user-{i % 30},purchase,{now - i},email,pro\n" for i in range(200))
    )
    with running_worker(env) as worker:
        out = io.StringIO()
        assert publish_command(str(jsonl), settings, progress=False, out=out) == 0
        assert publish_command(str(csv), settings, progress=False, out=out) == 0
        wait_metric([worker], "engagement_events_folded_total", 500)
        wait_metric([worker], "engagement_users_tracked", 30, timeout=10)  # next snapshot
        metrics = worker.metrics()
        assert metrics["engagement_events_dead_lettered_total"] == 0
        assert metrics['engagement_events_valid_total{event_type="purchase"}'] == 200
        assert worker.user("user-29") is not None

    broken = tmp_path / "broken.jsonl"
    broken.write_text(
        '{"event_id": "ok", "user_id": "u", "event_type": "x", "timestamp": 1}\n'
        '{"event_id": "truncated\n'
    )
    out = io.StringIO()
    assert publish_command(str(broken), settings, progress=False, out=out) == 1
    assert "line 2" in out.getvalue()
