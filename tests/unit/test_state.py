from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agents.logic.state import (
    DEADLINES,
    STAGES,
    Deadline,
    Stage,
    Track,
    UserState,
    decode,
    encode,
    header_deadline_ms,
)
from schemas.errors import StateDecodeError

T0 = 1_767_225_600_000
# written by the v1 encoder (git show aeea581:agents/logic/state.py), for the value in
# test_v1_bytes_written_before_v2_existed_still_read
V1_HEX = (
    "0121020200a8da769b010000809611779b010000801a1e9b9b010000809611779b010000"
    "e64f00000000010301010001efbeadde00000000"
)

states = st.builds(
    UserState,
    first_ms=st.integers(0, 2**50),
    last_ms=st.integers(0, 2**50),
    last_day=st.integers(0, 2**20),
    channel=st.integers(0, 255),
    days=st.integers(1, 2**120 - 1),
    x_extra=st.integers(0, 0xFFFF),
    categories=st.lists(st.integers(0, 2**120 - 1), max_size=4),
    recent=st.lists(st.tuples(st.integers(2**49, 2**50), st.integers(0, 2**32 - 1)), max_size=4),
    stage=st.sampled_from(list(Stage)),
    stage_since_ms=st.integers(0, 2**50),
    deadline_ms=st.integers(0, 2**52),
    deadline=st.sampled_from(list(Deadline)),
    pending=st.lists(
        st.tuples(
            st.integers(0, 2**52),
            st.integers(0, 2**32 - 1),
            st.integers(-1, 254),
            st.integers(0, 255),
        ),
        max_size=3,
    ).map(sorted),
    marks=st.lists(
        st.tuples(
            st.integers(0, 3),
            st.integers(0, 2),
            st.integers(0, 255),
            st.integers(0, 2**52),
            st.integers(0, 2**52),
        ),
        max_size=4,
    ).map(sorted),
)


@given(states)
def test_encoding_round_trips(state: UserState) -> None:
    state.recent = [(ms, fp) for ms, fp in state.recent if 0 <= state.last_ms - ms < 2**32]
    assert decode(encode(state)) == state


def test_typical_state_is_compact() -> None:
    state = UserState(
        first_ms=1_767_225_600_000,
        last_ms=1_769_817_600_000,
        last_day=20_483,
        channel=2,
        days=0b1011_0110_1101,
        categories=[0b101, 0, 0],
        recent=[(1_769_817_600_000 - i * 86_400_000, 12345 + i) for i in range(4)],
    )
    assert len(encode(state)) <= 90


def test_a_state_without_deferred_events_is_written_as_v1_and_with_them_as_v2() -> None:
    state = UserState(T0, T0, 20454, days=0b101, recent=[(T0, 7)], deadline_ms=T0 + 1)
    assert encode(state)[0] == 1
    state.pending = [(T0 + 5, 9, -1, 2), (T0 + 6, 10, 0, 0)]
    raw = encode(state)
    without = UserState(T0, T0, 20454, days=0b101, recent=[(T0, 7)], deadline_ms=T0 + 1)
    assert raw[0] == 2 and len(raw) == len(encode(without)) + 2 + 2 * 14
    assert decode(raw) == state


def test_v1_bytes_written_before_v2_existed_still_read() -> None:
    """A v1 value as the v1 encoder wrote it (stage active, dormant deadline, one recent id)."""
    v1 = bytes.fromhex(V1_HEX)
    state = decode(v1)
    assert state == UserState(
        first_ms=T0,
        last_ms=T0 + 3_600_000,
        last_day=20454,
        channel=2,
        days=0b11,
        categories=[1, 0],
        recent=[(T0 + 3_600_000, 0xDEADBEEF)],
        stage=Stage.ACTIVE,
        stage_since_ms=T0 + 3_600_000,
        deadline_ms=T0 + 3_600_000 + 7 * 86_400_000,
        deadline=Deadline.DORMANT,
        pending=[],
    )
    assert encode(state) == v1


# written by the v2 encoder (git show 44b068d:agents/logic/state.py): dormant, one deferred event
V2_HEX = (
    "0233020200a8da769b010000809611779b01000000cc7f169c01000000749a909b010000e64f0000000001"
    "0301010001efbeadde00000000010000e433a59b0100004d000000ff01"
)


def test_v2_bytes_still_read_and_marks_are_written_as_v3() -> None:
    state = decode(bytes.fromhex(V2_HEX))
    assert state.stage is Stage.DORMANT and state.pending == [(T0 + 9 * 86_400_000, 77, -1, 1)]
    assert state.marks == [] and encode(state) == bytes.fromhex(V2_HEX)
    state.marks = [(0, 1, 2, T0 + 8 * 86_400_000, 0)]
    raw = encode(state)
    assert raw[0] == 3 and len(raw) == len(bytes.fromhex(V2_HEX)) + 1 + 18
    assert decode(raw) == state
    state.pending = []
    assert decode(encode(state)) == state


@pytest.mark.parametrize("data", [b"", b"\x03rest", b"\x01short", b"\x02short"])
def test_foreign_bytes_raise_a_clear_error(data: bytes) -> None:
    with pytest.raises(StateDecodeError):
        decode(data)


def test_decode_looks_stages_and_deadlines_up_by_value() -> None:
    assert [int(stage) for stage in STAGES] == list(range(len(Stage)))
    assert [int(deadline) for deadline in DEADLINES] == list(range(len(Deadline)))


@pytest.mark.parametrize("nibbles", [0x0F, 0xF0, len(Stage), len(Deadline) << 4])
def test_a_stage_or_deadline_out_of_range_is_a_clear_error(nibbles: int) -> None:
    raw = bytearray(encode(UserState(T0, T0, 10)))
    raw[1] = nibbles
    with pytest.raises(StateDecodeError, match="corrupt state"):
        decode(bytes(raw))


def test_every_truncated_state_is_refused() -> None:
    state = UserState(
        T0, T0 + 3 * 86_400_000, 20_000, 1, 0b1011, 0, [0b11, 0b1], [(T0, 7), (T0 - 5, 9)],
        Stage.AT_RISK, T0, T0 + 99, Deadline.DORMANT, [(T0 + 1, 3, -1, 0)],
        [(0, 1, 2, T0, 0)], [Track(5, [(T0, 0), (T0 + 9, 1)], True)],
    )  # fmt: skip
    raw = encode(state)
    assert raw[0] == 4 and decode(raw) == state
    for end in range(1, len(raw)):
        with pytest.raises(StateDecodeError, match="corrupt state"):
            decode(raw[:end])


@given(states, st.booleans())
def test_the_header_tells_the_deadline_of_every_state_without_funnel_progress(
    state: UserState, in_funnel: bool
) -> None:
    """What the deadline index reads instead of decoding: the lifecycle deadline where there
    is one and no funnel window can come first, else nothing (the caller decodes)."""
    state.recent = [(ms, fp) for ms, fp in state.recent if 0 <= state.last_ms - ms < 2**32]
    if in_funnel:
        state.funnels = [Track(5, [(T0, 0)])]
    read = header_deadline_ms(encode(state))
    if in_funnel or state.deadline is Deadline.NONE:
        assert read is None
    else:
        assert read == state.deadline_ms


@pytest.mark.parametrize(
    "data",
    [b"", b"\x01short", b"\x05" + bytes(40), bytes(40)],
    ids=["empty", "truncated", "newer version", "version 0"],
)
def test_the_header_of_foreign_bytes_tells_nothing(data: bytes) -> None:
    assert header_deadline_ms(data) is None


@pytest.mark.parametrize("kind", [0, len(Deadline), 15])
def test_a_header_without_a_deadline_kind_tells_nothing(kind: int) -> None:
    raw = bytearray(encode(UserState(T0, T0, 10, deadline=Deadline.DORMANT, deadline_ms=T0 + 1)))
    assert header_deadline_ms(bytes(raw)) == T0 + 1
    raw[1] = raw[1] & 0x0F | kind << 4
    assert header_deadline_ms(bytes(raw)) is None
