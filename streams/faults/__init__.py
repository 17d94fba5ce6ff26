"""Fault scenarios against real workers on Apache Kafka (``make faults``, ``tests/faults``).

- :mod:`streams.faults.harness`: :class:`System`, the workers and input of one scenario.
- :mod:`streams.faults.ledger`: the books kept from the topics (input accounted for, expected
  signals replayed through a fresh pure engine, delivered signals and their duplicates).
- :mod:`streams.faults.report`: the oracle comparison and the results table.
"""

from __future__ import annotations

from streams.faults.harness import Message, System, rss_bytes, wait_until
from streams.faults.ledger import Accounts, Ledger, SignalCheck, build_ledger
from streams.faults.report import Row, compare, table, write_report

__all__ = [
    "Accounts",
    "Ledger",
    "Message",
    "Row",
    "SignalCheck",
    "System",
    "build_ledger",
    "compare",
    "rss_bytes",
    "table",
    "wait_until",
    "write_report",
]
