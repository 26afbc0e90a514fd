"""`counting.contrib.unpack` reads a packed total's lanes in one C call: it must give what
shifting them out one by one gives, for every total, the impossible ones included."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from counting.contrib import FIGURES, LANE_BITS, LANE_MASK, unpack


def shifted(packed: int) -> tuple[int, ...]:
    return tuple((packed >> (LANE_BITS * i)) & LANE_MASK for i in range(len(FIGURES)))


lanes = st.lists(st.integers(0, LANE_MASK), min_size=len(FIGURES), max_size=len(FIGURES)).map(
    lambda values: sum(v << (LANE_BITS * i) for i, v in enumerate(values))
)


@given(lanes)
def test_lanes_of_any_total(packed: int) -> None:
    assert unpack(packed) == shifted(packed)


@given(st.integers(min_value=-(2 ** (LANE_BITS * len(FIGURES) + 8)), max_value=2**600))
def test_lanes_of_any_integer_even_beyond_the_top_lane_or_negative(packed: int) -> None:
    assert unpack(packed) == shifted(packed)


def test_lanes_in_figure_order() -> None:
    packed = sum((i + 1) << (LANE_BITS * i) for i in range(len(FIGURES)))
    assert unpack(packed) == tuple(range(1, len(FIGURES) + 1))
    assert unpack(0) == (0,) * len(FIGURES)
