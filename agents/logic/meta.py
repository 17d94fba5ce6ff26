"""A partition's meta record: its clocks, its day and that day's win-back counters.

It is kept under a reserved key of the partition's store, so it travels through the same
changelog as the user states and is recovered with them. Version 2 adds each source's
event-time watermark (``"src"``) and processing-time frontier (``"fr"``), each with the wall ms
it was last heard from, so a restart or a takeover continues from them instead of starting
afresh; version 1 (no ``"v"``) is still read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import orjson

from agents.logic.frontier import SourceFrontiers
from agents.logic.watermarks import SourceWatermarks
from schemas.errors import StateDecodeError

META_KEY: Final = b"\x00meta"
META_VERSION: Final = 2  # records without "v" are version 1


@dataclass(slots=True)
class Meta:
    watermark_ms: int = 0
    today: int = 0
    lapsed: list[int] = field(default_factory=list)
    reactivated: list[int] = field(default_factory=list)
    sources: SourceWatermarks | None = None  # per source: event-time watermark
    frontiers: SourceFrontiers | None = None  # per source: processing-time frontier


def encode_meta(meta: Meta) -> bytes:
    data: dict[str, object] = {
        "v": META_VERSION,
        "watermark_ms": meta.watermark_ms,
        "today": meta.today,
        "lapsed": meta.lapsed,
        "reactivated": meta.reactivated,
    }
    if meta.sources is not None:
        data["src"] = meta.sources.to_wire()
    if meta.frontiers is not None:
        data["fr"] = meta.frontiers.to_wire()
    return orjson.dumps(data)


def decode_meta(raw: bytes, n_channels: int, timeout_ms: int = 30_000) -> Meta:
    """Inverse of :func:`encode_meta`; raises :class:`StateDecodeError` on foreign bytes (a
    ``"v"`` above :data:`META_VERSION` means a newer release wrote it)."""
    try:
        data = orjson.loads(raw)
        version = data.get("v", 1)
    except (orjson.JSONDecodeError, AttributeError) as exc:
        raise StateDecodeError(f"corrupt partition meta: {type(exc).__name__}: {exc}") from None
    if type(version) is int and version > META_VERSION:
        raise StateDecodeError(
            f"partition meta version {version} is newer than this worker reads (version "
            f"{META_VERSION}): run a release that reads meta version {version}",
            version=version,
        )
    try:
        pad = [0] * n_channels
        meta = Meta(
            int(data.get("watermark_ms", 0)),
            int(data.get("today", 0)),
            [int(n) for n in (list(data.get("lapsed", [])) + pad)[:n_channels]],
            [int(n) for n in (list(data.get("reactivated", [])) + pad)[:n_channels]],
        )
        if "src" in data:
            meta.sources = SourceWatermarks.from_wire(timeout_ms, meta.watermark_ms, data["src"])
        if "fr" in data:
            meta.frontiers = SourceFrontiers.from_wire(timeout_ms, data["fr"])
    except (AttributeError, TypeError, ValueError) as exc:
        raise StateDecodeError(f"corrupt partition meta: {type(exc).__name__}: {exc}") from None
    return meta
