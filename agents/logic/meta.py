"""A partition's meta record: its event clock, its day and that day's win-back counters.

It is kept under a reserved key of the partition's store, so it travels through the same
changelog as the user states and is recovered with them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

from agents.logic.watermarks import SourceWatermarks

META_KEY = b"\x00meta"


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
    data = orjson.loads(raw)
    pad = [0] * n_channels
    return Meta(
        int(data.get("watermark_ms", 0)),
        int(data.get("today", 0)),
        (list(data.get("lapsed", [])) + pad)[:n_channels],
        (list(data.get("reactivated", [])) + pad)[:n_channels],
    )
