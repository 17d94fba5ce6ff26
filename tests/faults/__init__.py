"""Fault scenarios against real workers on Apache Kafka (``make faults``, ``tests/faults``).

- :mod:`tests.faults.harness`: :class:`System`, the workers and input of one scenario.
- :mod:`tests.faults.ledger`: the books kept from the topics (input accounted for, delivered
  signals and their duplicates).
- :mod:`tests.faults.verdict`: the delivered signals against the independent oracle
  (``tests/oracle.py``): nothing missing, nothing extra but the named, checked classes.
- :mod:`tests.faults.report`: the gauge comparison and the results table.
"""

from __future__ import annotations

from tests.faults.harness import Message, System, rss_bytes, wait_until
from tests.faults.ledger import Accounts, Ledger, SignalCheck, build_ledger
from tests.faults.report import Row, compare, table, write_report

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
