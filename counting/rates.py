"""Rates and tiers, computed with integers so that 0.125-style ties round the same everywhere.

Floating point would turn 1/800 into 0.12499999… and round it down; the spec says half-up.
"""

from __future__ import annotations

from models.tiers import Tier


def hundredths_half_up(numerator: int, denominator: int, scale: int = 100) -> int:
    """``round_half_up(numerator / denominator * scale, 2)`` expressed in hundredths."""
    return (numerator * scale * 200 + denominator) // (2 * denominator)


def percent(numerator: int, denominator: int) -> int | None:
    """A rate in hundredths of a percent, or None when there is nothing to divide by."""
    if denominator <= 0:
        return None
    return hundredths_half_up(numerator, denominator)


def as_number(hundredths: int | None) -> float | None:
    return None if hundredths is None else hundredths / 100


def tier_of(hundredths: int | None) -> Tier | None:
    """The tier is decided on the rounded value (19.995 rounds to 20.00 and is ``low``)."""
    if hundredths is None:
        return None
    if hundredths < 2000:
        return "no_engagement"
    if hundredths < 5000:
        return "low"
    if hundredths < 7500:
        return "high"
    return "very_high"
