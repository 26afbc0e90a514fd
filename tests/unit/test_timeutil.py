"""`counting.timeutil.iso` builds whole seconds from cached day texts and a digit table: it
must give exactly what formatting the datetime gives, for any moment."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from counting import timeutil
from counting.timeutil import EPOCH, iso, iso_seconds

# 0001-01-01 .. 9999-12-31, in µs since the epoch
_FIRST_US = (datetime(1, 1, 1, tzinfo=UTC) - EPOCH) // timedelta(microseconds=1)
_LAST_US = (datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC) - EPOCH) // timedelta(microseconds=1)


def _formatted(us: int) -> str:
    return (EPOCH + timedelta(microseconds=us)).isoformat()[:-6] + "Z"


@given(st.integers(min_value=_FIRST_US, max_value=_LAST_US))
def test_iso_is_the_datetime_form(us: int) -> None:
    assert iso(us) == _formatted(us)


@given(st.integers(min_value=_FIRST_US // 1_000_000 + 1, max_value=_LAST_US // 1_000_000))
def test_whole_seconds(seconds: int) -> None:
    assert iso_seconds(seconds) == iso(seconds * 1_000_000) == _formatted(seconds * 1_000_000)


def test_known_moments() -> None:
    assert iso_seconds(0) == "1970-01-01T00:00:00Z"
    assert iso_seconds(-1) == "1969-12-31T23:59:59Z"
    assert iso(1_780_000_000_123_456) == "2026-05-28T20:26:40.123456Z"
    assert iso_seconds(1_780_000_000) == "2026-05-28T20:26:40Z"


def test_the_day_cache_stays_bounded() -> None:
    for day in range(timeutil._MAX_DAY_PREFIXES + 10):
        iso_seconds(day * 86_400)
    assert len(timeutil._day_prefixes) <= timeutil._MAX_DAY_PREFIXES
    assert iso_seconds(5 * 86_400 + 61) == "1970-01-06T00:01:01Z"
