"""Shared by every test layer: which path of agents.logic runs (see its docstring)."""

from __future__ import annotations

from agents import logic


def pytest_report_header() -> str:
    path = "compiled" if logic.compiled() else "pure Python"
    return f"agents.logic: {path} ({logic.reason}; {logic.PURE_ENV}=1 runs pure Python)"
