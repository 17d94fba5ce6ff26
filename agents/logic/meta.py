"""A partition's meta record: its event clock, its day and that day's win-back counters.

It is kept under a reserved key of the partition's store, so it travels through the same
changelog as the user states and is recovered with them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

from agents.logic.watermarks import SourceWatermarks
from schemas.errors import StateDecodeError

META_KEY = b"\x00meta"
META_VERSION = 1  # records without "v" are version 1


@dataclass(slots=True)
class Meta:
    watermark_ms: int = 0
    today: int = 0
    lapsed: list[int] = field(default_factory=list)
    reactivated: list[int] = field(default_factory=list)
    sources: SourceWatermarks | None = None  # in memory only; rebuilt from new records


def encode_meta(meta: Meta) -> bytes:
    return orjson.dumps(
        {
            "watermark_ms": meta.watermark_ms,
            "today": meta.today,
            "lapsed": meta.lapsed,
            "reactivated": meta.reactivated,
        }
    )


def decode_meta(raw: bytes, n_channels: int) -> Meta:
    """Inverse of :func:`encode_meta`; raises :class:`StateDecodeError` on foreign bytes (a
    ``"v"`` above :data:`META_VERSION` means a newer release wrote it)."""
    try:
        data = orjson.loads(raw)
        version = data.get("v", META_VERSION)
        pad = [0] * n_channels
        meta = Meta(
            int(data.get("watermark_ms", 0)),
            int(data.get("today", 0)),
            [int(n) for n in (list(data.get("lapsed", [])) + pad)[:n_channels]],
            [int(n) for n in (list(data.get("reactivated", [])) + pad)[:n_channels]],
        )
    except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError) as exc:
        raise StateDecodeError(f"corrupt partition meta: {type(exc).__name__}: {exc}") from None
    if type(version) is int and version > META_VERSION:
        raise StateDecodeError(
            f"partition meta version {version} is newer than this worker reads (version "
            f"{META_VERSION}): run a release that reads meta version {version}",
            version=version,
        )
    return meta
