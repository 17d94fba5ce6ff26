"""The worker keeps the root logger at ENGAGEMENT_LOG_LEVEL: Faust's terminal spinner would set
it to DEBUG at warning and above, so that every debug record of aiokafka, Faust and mode was
built, handed to the spinner's handler and thrown away."""

from __future__ import annotations

import logging

import pytest

from streams.worker.app import EngagementWorker
from tests.agents.conftest import MemorySink, make_worker


@pytest.mark.parametrize("level", ["warning", "error"])
def test_a_quiet_log_level_keeps_debug_records_unmade(sink: MemorySink, level: str) -> None:
    worker = EngagementWorker(make_worker(sink), loglevel=level, quiet=True)
    root = logging.getLogger()
    saved = root.level, list(root.handlers)
    try:
        root.handlers = [logging.NullHandler()]
        root.setLevel(level.upper())
        worker.on_setup_root_logger(root, root.level)  # what mode calls when it sets up logging
        assert root.level == logging.getLevelName(level.upper())
        assert not root.isEnabledFor(logging.DEBUG)
        assert len(root.handlers) == 1
    finally:
        root.setLevel(saved[0])
        root.handlers = saved[1]
