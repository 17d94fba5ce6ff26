from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agents.logic.state import Deadline, Stage, UserState, decode, encode
from schemas.errors import StateDecodeError

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


@pytest.mark.parametrize("data", [b"", b"\x02rest", b"\x01short"])
def test_foreign_bytes_raise_a_clear_error(data: bytes) -> None:
    with pytest.raises(StateDecodeError):
        decode(data)
