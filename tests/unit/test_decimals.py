"""round_to gives round(x, n)'s float to the bit: random figures, the ties and their neighbours,
the figures a signal reports, signs, zeros and the values round treats its own way."""

from __future__ import annotations

import math
import random
import struct

import pytest

from agents.logic.decimals import round_to


def bits(value: float) -> bytes:
    return struct.pack("<d", value)  # tells -0.0 from 0.0 and compares NaNs


def assert_same(values: list[float], digits: int) -> None:
    wrong = [
        (x, round(x, digits), round_to(x, digits))
        for x in values
        if bits(round(x, digits)) != bits(round_to(x, digits))
    ]
    assert not wrong, wrong[:5]


@pytest.mark.parametrize("digits", [0, 1, 2, 4, 6, 9])
def test_random_figures_of_every_size(digits: int) -> None:
    rng = random.Random(digits)
    values = [
        rng.uniform(0, 10.0 ** rng.randint(-8, 17)) * rng.choice((1, -1)) for _ in range(50_000)
    ]
    assert_same(values, digits)


@pytest.mark.parametrize("digits", [1, 4, 6])
def test_decimal_ties_and_the_floats_next_to_them(digits: int) -> None:
    """k.5 / 10**n is rarely a double; the doubles nearest it and a few ulps away fall on both
    sides of the tie, which is where a shortcut through ``x * 10**n`` goes wrong."""
    rng = random.Random(100 + digits)
    values = []
    for _ in range(5_000):
        tie = (rng.randrange(0, 10**7) + 0.5) / 10**digits
        near = tie
        for _ in range(4):
            values += [near, -near]
            near = math.nextafter(near, math.inf)
        near = tie
        for _ in range(4):
            near = math.nextafter(near, -math.inf)
            values += [near, -near]
    assert_same(values, digits)


def test_the_figures_a_signal_reports() -> None:
    """Ratios of small counts (days per week, declines) and day fractions, as reasons makes them."""
    weeks = [n / 7 for n in range(1, 60)] + [4.0]
    values = [b / w for b in range(0, 200) for w in weeks]
    values += [
        max(0.0, 1 - (r / 4) / (b / w))
        for r in range(0, 29)
        for b in range(1, 60)
        for w in weeks[:9]
    ]
    values += [ms / 86_400_000 for ms in range(0, 90 * 86_400_000, 86_400_000 // 97)]
    for digits in (4, 6):
        assert_same(values, digits)


def test_signs_zeros_and_values_round_keeps_its_own_way() -> None:
    specials = [
        0.0,
        -0.0,
        1e-300,
        -1e-300,
        0.49999999999999994,
        2.0**52,
        2.0**52 + 1,
        -(2.0**53),
        1e300,
        -1e300,
        5e-324,
    ]
    for digits in (-3, -1, 0, 4, 6, 22, 23, 40):
        assert_same([*specials, 1234.5678, -98765.4321, 0.125], digits)
        assert math.isinf(round_to(math.inf, digits)) and round_to(-math.inf, digits) < 0
        assert math.isnan(round_to(math.nan, digits))
