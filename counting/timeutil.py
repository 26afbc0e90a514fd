"""Time in the core is integer microseconds since the epoch (UTC).

Integers make ordering, day numbers and equality exact and cheap, and survive the codec
unchanged; datetimes only appear at the edges (events in, snapshot out).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

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
    seconds, fraction = divmod(us, US_PER_SECOND)
    if not fraction:
        return iso_seconds(seconds)
    # str(1_000_000 + fraction)[1:]: the six digits, zero-padded, without a format spec.
    return f"{iso_seconds(seconds)[:-1]}.{str(US_PER_SECOND + fraction)[1:]}Z"


_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_TWO_DIGITS = tuple(f"{n:02d}" for n in range(60))
_day_prefixes: dict[int, str] = {}  # day number -> "YYYY-MM-DDT"
_MAX_DAY_PREFIXES = 4096  # days of the window and a few years of first-seen times


def iso_seconds(seconds: int) -> str:
    """``iso`` of a whole second (the snapshot's `last_engaged_at`s: several a written contact,
    each a different moment), without a datetime: the day's text cached, the time of day
    from a table of two-digit strings."""
    day, rest = divmod(seconds, 86_400)
    prefix = _day_prefixes.get(day)
    if prefix is None:
        if len(_day_prefixes) >= _MAX_DAY_PREFIXES:
            _day_prefixes.clear()
        prefix = _day_prefixes[day] = date.fromordinal(_EPOCH_ORDINAL + day).isoformat() + "T"
    hour, rest = divmod(rest, 3600)
    minute, second = divmod(rest, 60)
    return f"{prefix}{_TWO_DIGITS[hour]}:{_TWO_DIGITS[minute]}:{_TWO_DIGITS[second]}Z"


def day_of(us: int) -> int:
    return us // DAY_US
