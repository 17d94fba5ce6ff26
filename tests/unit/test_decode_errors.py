"""What cannot be read says why: by_user batches (a reason from a closed set, nothing half
decoded), user states and partition meta records (a newer version names the version needed)."""

from __future__ import annotations

import orjson
import pytest

from agents.logic.engine import Engine
from agents.logic.meta import META_KEY, Meta, decode_meta, encode_meta
from agents.logic.state import VERSION, UserState, decode, encode
from schemas.errors import BatchDecodeError, StateDecodeError
from schemas.records import Activity, Event
from streams.settings import Settings
from streams.worker.codecs import BatchReason, decode_batch, encode_batch
from streams.worker.engine_setup import engine_config

T0 = 1_767_225_600_000
GOOD = [Activity("u1", T0, "e1", "page_view", "organic")]


def test_a_good_batch_of_either_version_decodes() -> None:
    assert decode_batch(encode_batch(5, GOOD, "src")) == (5, "src", GOOD)
    v1 = orjson.dumps({"v": 1, "wm": 7, "events": [Event("e1", "u1", "page_view", T0).to_wire()]})
    watermark, _, rows = decode_batch(v1)
    assert watermark == 7 and [(r.user_id, r.timestamp_ms) for r in rows] == [("u1", T0)]


def rows_batch(*rows: object) -> bytes:
    return orjson.dumps({"v": 2, "wm": 0, "src": "", "rows": list(rows)})


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, BatchReason.TOMBSTONE),
        (b"\xff\x00garbage", BatchReason.NOT_JSON),
        (b"", BatchReason.NOT_JSON),
        (b'{"v": 3, "rows": []}', BatchReason.UNKNOWN_VERSION),
        (b'{"rows": []}', BatchReason.UNKNOWN_VERSION),
        (b"[1, 2]", BatchReason.UNKNOWN_VERSION),
        (b'{"v": 2}', BatchReason.INVALID_BATCH),
        (b'{"v": 1, "events": [{"user_id": "u"}]}', BatchReason.INVALID_BATCH),
        (b'{"v": 2, "wm": "soon", "rows": []}', BatchReason.INVALID_BATCH),
        # the first row is fine, the second is not: the whole record is refused
        (rows_batch(list(GOOD[0]), ["u2", "1", "e2", "click", None]), BatchReason.INVALID_BATCH),
        (rows_batch(list(GOOD[0]), ["u2", T0, "e2"]), BatchReason.INVALID_BATCH),
        (rows_batch([7, T0, "e2", "click", None]), BatchReason.INVALID_BATCH),
        (rows_batch(["u2", True, "e2", "click", None]), BatchReason.INVALID_BATCH),
        (rows_batch("u2abc"), BatchReason.INVALID_BATCH),  # five characters are not a row
        (rows_batch(["u2", T0, "e2", "click", None, "extra"]), BatchReason.INVALID_BATCH),
        (b'{"v": 2, "wm": 0, "src": "", "rows": {"u2": 1}}', BatchReason.INVALID_BATCH),
    ],
)
def test_an_unreadable_batch_raises_with_its_reason(value: bytes | None, reason: str) -> None:
    with pytest.raises(BatchDecodeError) as caught:
        decode_batch(value)
    assert caught.value.reason == reason
    assert "u2" not in str(caught.value)  # messages name fields, never user ids


def test_a_newer_state_version_says_which_version_reads_it() -> None:
    raw = encode(UserState(T0, T0, 20454))
    with pytest.raises(StateDecodeError) as caught:
        decode(bytes([VERSION + 1]) + raw[1:])
    assert caught.value.version == VERSION + 1
    assert f"state version {VERSION + 1}" in str(caught.value)
    assert f"reads state version {VERSION + 1}" in str(caught.value)


@pytest.mark.parametrize("raw", [b"not json", b"[]", b'{"today": "x"}', b'{"lapsed": 3}'])
def test_a_corrupt_meta_record_raises_state_decode_error(raw: bytes) -> None:
    with pytest.raises(StateDecodeError):
        decode_meta(raw, 3)


def test_a_newer_meta_version_says_so_and_the_current_one_reads() -> None:
    with pytest.raises(StateDecodeError) as caught:
        decode_meta(b'{"v": 3, "today": 1}', 3)
    assert caught.value.version == 3 and "meta version 3" in str(caught.value)
    assert decode_meta(encode_meta(Meta(5, 6, [1], [2])), 2) == Meta(5, 6, [1, 0], [2, 0])


def test_assign_names_the_partition_and_key_it_cannot_read_and_takes_nothing_over() -> None:
    engine = Engine(engine_config(Settings.from_env({})))
    good = encode(UserState(T0, T0, 20454))
    store = {b"fine": good, b"bad": b"\x09" + good[1:]}
    with pytest.raises(StateDecodeError) as caught:
        engine.assign(3, store)
    assert (caught.value.partition, caught.value.key) == (3, b"bad")
    assert 3 not in engine.partitions
    with pytest.raises(StateDecodeError) as caught:
        engine.assign(1, {META_KEY: b"\x00"})
    assert caught.value.key == META_KEY


def test_the_stop_message_names_what_a_reserved_key_holds() -> None:
    from streams.worker.quarantine import unreadable_state

    for key, what in [
        (META_KEY, "the partition's meta record"),
        (b"\x00returns", "a record of the partition's return counts"),
        (b"\x00returns/s0,1,0,20400", "a record of the partition's return counts"),
        (b"user-7", "a user state"),
    ]:
        message = unreadable_state("app-users-changelog", 2, 41, StateDecodeError("x", key=key))
        assert f"{what} in app-users-changelog partition 2 at offset 41" in message
