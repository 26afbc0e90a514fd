from __future__ import annotations

import pytest

from counting.rates import as_number, hundredths_half_up, percent, tier_of


@pytest.mark.parametrize(
    ("numerator", "denominator", "expected"),
    [
        (1, 8, 12.5),
        (2, 3, 66.67),
        (1, 6, 16.67),
        (1, 800, 0.13),  # 0.125 is a tie: half-up, where float rounding would give 0.12
        (1, 3, 33.33),
        (5, 5, 100.0),
        (0, 7, 0.0),
        (1, 1600, 0.06),  # 0.0625 -> 0.06
        (3, 1600, 0.19),  # 0.1875 -> 0.19
    ],
)
def test_percent_rounds_half_up_to_two_decimals(
    numerator: int, denominator: int, expected: float
) -> None:
    assert as_number(percent(numerator, denominator)) == expected


def test_percent_is_null_without_denominator() -> None:
    assert percent(0, 0) is None
    assert as_number(None) is None


@pytest.mark.parametrize(
    ("numerator", "denominator", "tier"),
    [
        (1999, 10000, "no_engagement"),  # 19.99
        (2000, 10000, "low"),  # 20.00
        (4999, 10000, "low"),  # 49.99
        (5000, 10000, "high"),  # 50.00
        (7499, 10000, "high"),  # 74.99
        (7500, 10000, "very_high"),  # 75.00
        (0, 10, "no_engagement"),
        (10, 10, "very_high"),
        # 19.995 rounds to 20.00: the tier is decided on the ROUNDED value
        (19995, 100000, "low"),
        (49995, 100000, "high"),
        (74995, 100000, "very_high"),
        (19994, 100000, "no_engagement"),
    ],
)
def test_tier_boundaries(numerator: int, denominator: int, tier: str) -> None:
    assert tier_of(percent(numerator, denominator)) == tier


def test_tier_is_null_without_deliveries() -> None:
    assert tier_of(percent(0, 0)) is None


def test_weekly_frequency_scale() -> None:
    # 13 messages in 90 days = 1.0111 per week
    assert hundredths_half_up(13 * 7, 90, scale=1) == 101
