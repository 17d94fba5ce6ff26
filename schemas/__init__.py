"""The contracts engagement-stream publishes: JSON Schemas for events in, signals out and dead
letters, example payloads, and thin Python records and loaders for them."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import orjson

from schemas.records import Event

SCHEMA_DIR = Path(__file__).resolve().parent
EXAMPLES_DIR = SCHEMA_DIR / "examples"

__all__ = ["EXAMPLES_DIR", "SCHEMA_DIR", "Event", "load_schema"]


@cache
def load_schema(name: str) -> dict[str, Any]:
    """The parsed JSON Schema ``schemas/<name>.schema.json``."""
    schema: dict[str, Any] = orjson.loads((SCHEMA_DIR / f"{name}.schema.json").read_bytes())
    return schema
