"""The signals' RFC 3339 stamps: ``iso_ms`` against the standard library's formatting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from schemas.timestamps import MAX_TIMESTAMP_MS, iso_ms

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
FIRST_MS = -62_135_596_800_000  # 0001-01-01T00:00:00.000Z


def reference(ms: int) -> str:
    moment = EPOCH + timedelta(milliseconds=ms)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@given(st.integers(FIRST_MS, MAX_TIMESTAMP_MS))
def test_iso_ms_is_the_standard_librarys_rfc3339(ms: int) -> None:
    assert iso_ms(ms) == reference(ms)


def test_iso_ms_edges() -> None:
    assert iso_ms(0) == "1970-01-01T00:00:00.000Z"
    assert iso_ms(-1) == "1969-12-31T23:59:59.999Z"
    assert iso_ms(951_782_400_000) == "2000-02-29T00:00:00.000Z"
    assert iso_ms(MAX_TIMESTAMP_MS) == "9999-12-31T23:59:59.999Z"
