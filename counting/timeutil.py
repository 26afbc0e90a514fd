"""Time in the core is integer microseconds since the epoch (UTC).

Integers make ordering, day numbers and equality exact and cheap, and survive the codec
unchanged; datetimes only appear at the edges (events in, snapshot out).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_US = timedelta(microseconds=1)
US_PER_SECOND = 1_000_000
DAY_US = 86_400 * US_PER_SECOND


def to_us(moment: datetime) -> int:
    return (moment - EPOCH) // ONE_US


def from_us(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


def iso(us: int) -> str:
    """RFC 3339 in UTC with ``Z``; microseconds only when there are some."""
    text = from_us(us).isoformat()
    return text[:-6] + "Z"


def day_of(us: int) -> int:
    return us // DAY_US
