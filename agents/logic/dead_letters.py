"""Dead letters that Kafka can take: a rejected record reduced to fit a size, never dropped.

A dead letter keeps the rejected input's key, value and headers verbatim, plus the
``engagement.error.*`` headers, as long as the whole record fits ``max_bytes``
(``ENGAGEMENT_RECORD_MAX_BYTES``). A larger one (a 1 MB message the input topic accepted, or
huge headers) is reduced, and says so in three more headers::

    engagement.error.reduced         what was cut: value_truncated | value_digest,
                                     key_dropped, headers_dropped (comma-separated)
    engagement.error.original_bytes  size of the rejected record (key + value + headers)
    engagement.error.value_sha256    SHA-256 (hex) of the whole original value

* :func:`fit_dead_letter` (ingest, before producing): the value is cut to a prefix (at a UTF-8
  character boundary), so a person triaging it still sees what the payload was and who sent
  it; key and original headers are kept unless either exceeds :data:`KEEP_BYTES`.
* :func:`digest_dead_letter` (delivery, when Kafka refused a dead letter for its size): only
  the error headers and the digest are left, which any topic that takes a 1 KB record accepts.

The digest lets the full payload be matched against the producer's own copy; a truncated value
is never mistaken for the original, because re-publishing it fails as ``invalid_json`` again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Final

from agents.logic.ingest import ERROR_HEADER_PREFIX

__all__ = [
    "KEEP_BYTES",
    "MIN_RECORD_BYTES",
    "REDUCED",
    "DeadLetterRecord",
    "digest_dead_letter",
    "fit_dead_letter",
    "is_reduced_to_digest",
    "record_bytes",
]

OutHeaders = list[tuple[str, bytes | None]]
DeadLetterRecord = tuple[bytes | None, bytes | None, OutHeaders]  # key, value, headers
KEEP_BYTES: Final = 16 * 1024  # a reduced dead letter keeps the original key / headers up to this
NOTE_BYTES: Final = 512  # room for the three headers added by a reduction
MIN_RECORD_BYTES: Final = 64 * 1024  # smallest max_bytes that always leaves room for a value prefix
REDUCED: Final = ERROR_HEADER_PREFIX + "reduced"
ORIGINAL_BYTES: Final = ERROR_HEADER_PREFIX + "original_bytes"
VALUE_SHA256: Final = ERROR_HEADER_PREFIX + "value_sha256"
_ADDED: Final = (REDUCED, ORIGINAL_BYTES, VALUE_SHA256)


def record_bytes(
    key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, str | bytes | None]]
) -> int:
    """Key + value + header names and values, in bytes (what a Kafka size limit counts,
    without the few bytes of record framing)."""
    return len(key or b"") + len(value or b"") + _headers_bytes(headers)


def fit_dead_letter(
    key: bytes | None, value: bytes | None, headers: OutHeaders, max_bytes: int, keep_value: int
) -> DeadLetterRecord:
    """The dead letter unchanged if it fits ``max_bytes``; otherwise reduced: the value cut to
    at most ``keep_value`` bytes (and to what fits), key and original headers dropped if either
    is over :data:`KEEP_BYTES`. Needs ``max_bytes >= MIN_RECORD_BYTES`` to always fit."""
    if record_bytes(key, value, headers) <= max_bytes:
        return key, value, headers
    errors, original = _split(headers)
    size = record_bytes(key, value, original)  # the rejected record, as it was read
    notes: list[str] = []
    if _headers_bytes(original) > KEEP_BYTES:
        original, notes = [], ["headers_dropped"]
    if key is not None and len(key) > KEEP_BYTES:
        key = None
        notes.insert(0, "key_dropped")
    room = max_bytes - record_bytes(key, None, original + errors) - NOTE_BYTES
    digest = _sha256(value)
    if value is not None and len(value) > max(room, 0):
        value = _prefix(value, max(0, min(room, keep_value)))
        notes.insert(0, "value_truncated")
    return key, value, original + errors + _notes(notes, size, digest)


def digest_dead_letter(
    key: bytes | None, value: bytes | None, headers: OutHeaders
) -> DeadLetterRecord:
    """Only the error headers and the value's digest: for a dead letter Kafka refused as too
    large. Size and digest of an earlier reduction are kept (they describe the original)."""
    errors, original = _split(headers)
    found = dict(headers)
    size = _int(found.get(ORIGINAL_BYTES)) or record_bytes(key, value, original)
    digest = found.get(VALUE_SHA256) or _sha256(value)
    notes = ["value_digest"] if value is not None else []
    notes += ["key_dropped"] if key is not None else []
    notes += ["headers_dropped"] if original else []
    return None, None, errors + _notes(notes, size, digest if value is not None else None)


def is_reduced_to_digest(headers: Sequence[tuple[str, str | bytes | None]] | None) -> bool:
    """Whether a dead letter is already as small as :func:`digest_dead_letter` makes it."""
    for name, raw in headers or ():
        if name == REDUCED:
            text = raw.decode() if isinstance(raw, bytes) else raw or ""
            return "value_digest" in text.split(",") or text == ""
    return False


def _notes(notes: list[str], size: int, digest: bytes | None) -> OutHeaders:
    added: OutHeaders = [(REDUCED, ",".join(notes).encode()), (ORIGINAL_BYTES, str(size).encode())]
    if digest is not None:
        added.append((VALUE_SHA256, digest))
    return added


def _split(headers: OutHeaders) -> tuple[OutHeaders, OutHeaders]:
    """(engagement.error.* headers without an earlier reduction's notes, the others)."""
    errors = [h for h in headers if h[0].startswith(ERROR_HEADER_PREFIX) and h[0] not in _ADDED]
    return errors, [h for h in headers if not h[0].startswith(ERROR_HEADER_PREFIX)]


def _headers_bytes(headers: Sequence[tuple[str, str | bytes | None]]) -> int:
    return sum(len(name.encode()) + len(raw or b"") for name, raw in headers)


def _sha256(value: bytes | None) -> bytes | None:
    return None if value is None else hashlib.sha256(value).hexdigest().encode()


def _prefix(value: bytes, limit: int) -> bytes:
    """At most ``limit`` bytes of ``value``, not ending inside a UTF-8 multibyte character."""
    cut = limit
    while 0 < cut < len(value) and value[cut] & 0xC0 == 0x80:  # continuation byte: step back
        cut -= 1
    return value[:cut]


def _int(raw: bytes | None) -> int:
    try:
        return int(raw or b"0")
    except ValueError:
        return 0
