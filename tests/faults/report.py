"""The fault run's results table (``reports/faults.md``) and the oracle comparison it reports."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from tests.faults.ledger import Accounts, SignalCheck
from tests.faults.verdict import Verdict

HEADER = (
    "| scenario | config | events in | valid | dead-lettered | quarantined "
    "| signals expected / delivered / duplicated | missing | extra "
    "| aggregates = oracle | recovery | notes |"
    "\n|---|---|---:|---:|---:|---:|---|---:|---:|:-:|---:|---|"
)


def compare(actual: Mapping[str, float], expected: Mapping[str, float]) -> list[str]:
    """Series whose value differs from the oracle's (``name{labels}: got X, want Y``)."""
    return [
        f"{name}: got {actual.get(name)}, want {want}"
        for name, want in expected.items()
        if actual.get(name) != want
    ]


@dataclass
class Row:
    scenario: str
    config: str
    accounts: Accounts
    signals: SignalCheck
    verdict: Verdict
    aggregates_equal: bool
    recovery_s: float
    notes: str = ""
    quarantined: int = 0  # by_user records in the quarantine topic (all undecodable ones)

    @property
    def passed(self) -> bool:
        return (
            self.accounts.balanced and self.signals.ok and self.verdict.ok and self.aggregates_equal
        )

    def markdown(self) -> str:
        a, s, v = self.accounts, self.signals, self.verdict
        missing, extra = v.cells()
        return (
            f"| {self.scenario} | {self.config} | {a.events_in:,} | {a.valid:,} "
            f"| {a.dead_lettered:,} | {self.quarantined:,} "
            f"| {v.expected:,} / {s.delivered:,} / {s.duplicated:,} | {missing} | {extra} "
            f"| {'yes' if self.aggregates_equal else 'no'} | {self.recovery_s:.1f} s "
            f"| {self.notes} |"
        )


def table(rows: Iterable[Row]) -> str:
    return "\n".join([HEADER, *(row.markdown() for row in rows)])


def write_report(
    rows: list[Row], path: Path, preamble: str = "", failures: Iterable[tuple[str, str]] = ()
) -> str:
    """Write the table (with ``preamble``, and scenarios that failed before their row) to
    ``path``; returns the text."""
    lines = [f"| {name} | FAILED: {why} | | | | | | | | | | |" for name, why in failures]
    body = "\n".join([table(rows), *lines])
    text = "# Fault scenarios\n\n" + (preamble + "\n\n" if preamble else "") + body + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return text
