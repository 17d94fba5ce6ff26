"""Kafka's default partitioning of keyed records, in pure Python.

``murmur2`` is the Java client's ``org.apache.kafka.common.utils.Utils.murmur2`` (seed
0x9747b28c, little-endian 4-byte blocks, signed 32-bit result) and ``partition_for`` is
``Utils.toPositive(murmur2(key)) % numPartitions``, what the Java producer's default
partitioner and librdkafka's ``murmur2_random`` partitioner do for a non-null key. Faust and
any Java or confluent-kafka producer therefore agree with it on where a user's records live.
Nothing is cached here; callers that hash the same key often cache outside.
"""

from __future__ import annotations

from struct import Struct
from typing import Final

from mypy_extensions import i64

_SEED: Final = 0x9747B28C
_M: Final = 0x5BD1E995
_MASK: Final = 0xFFFFFFFF
_WORDS: Final = [Struct(f"<{n}I") for n in range(64)]  # unpackers for keys up to 255 bytes


def murmur2(data: bytes) -> int:
    """The 32-bit murmur2 hash of ``data`` as Java returns it (a signed int).

    Every product is of a value below 2**32 and ``_M`` (below 2**31), so below 2**63: compiled,
    ``i64`` keeps them in machine words, where plain ``int`` products pass mypyc's tagged range
    (2**62) and take the arbitrary-precision path, about 400 instructions each."""
    length: i64 = len(data)
    h: i64 = (_SEED ^ length) & _MASK
    blocks = length >> 2
    end = blocks << 2
    words = (
        _WORDS[blocks].unpack_from(data) if blocks < 64 else Struct(f"<{blocks}I").unpack_from(data)
    )
    for word in words:
        k: i64 = (i64(word) * _M) & _MASK
        h = ((h * _M) & _MASK) ^ (((k ^ (k >> 24)) * _M) & _MASK)
    tail = length & 3
    if tail:
        if tail == 3:
            h ^= i64(data[end + 2]) << 16
        if tail >= 2:
            h ^= i64(data[end + 1]) << 8
        h = ((h ^ i64(data[end])) * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h - 0x100000000 if h & 0x80000000 else h


def partition_for(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for ``key`` among ``partitions``."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions
