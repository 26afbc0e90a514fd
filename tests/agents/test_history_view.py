"""A contact's tier history (`agents.history_view`): the rows a checkpoint keeps, and what
Redis shows of them (the compressed array and the org's tier-change members) as time passes
rows out of the window and the 7-day horizon."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.history_view import history_after, history_json, render
from agents.org_index import change_members
from agents.stored import HISTORY_MAX
from counting import CountingConfig
from engagement_monitor.snapshot_codec import pack_snapshot

CFG = CountingConfig()
START = datetime(2026, 6, 1, 12, tzinfo=UTC)
TIERS = (None, "no_engagement", "low", "high", "very_high")


def _change(at: datetime, channel: str | None, previous: str | None, tier: str | None) -> Any:
    return {
        "changed_at": at.isoformat(timespec="microseconds").replace("+00:00", "Z"),
        "channel": channel,
        "previous_tier": previous,
        "tier": tier,
        "rate": 12.5,
        "cause": "event",
    }


# One checkpoint: how long after the previous one (seconds, up to ~40 days), and its changes.
checkpoint = st.tuples(
    st.one_of(
        st.integers(0, 120),
        st.integers(0, 8 * 86_400),
        st.integers(6 * 86_400, 40 * 86_400),
        st.just(7 * 86_400),
    ),
    st.floats(0, 1, allow_nan=False).map(lambda f: int(f * 1_000_000)),
    st.lists(
        st.tuples(
            st.sampled_from((None, None, "sms", "email")),
            st.sampled_from(TIERS),
            st.sampled_from(TIERS),
        ),
        max_size=6,
    ),
    st.booleans(),  # the contact was evicted / reloaded before this checkpoint
)


def _expected(history: list[Any], now: datetime) -> tuple[bytes | None, Any]:
    members = change_members(history, now) if history else ()
    return (pack_snapshot(history_json(history)) if history else None), members


@settings(max_examples=300, deadline=None)
@given(st.lists(checkpoint, min_size=1, max_size=25))
def test_the_rows_kept_are_the_window_s_newest_and_render_as_redis_shows_them(
    steps: list[Any],
) -> None:
    """Checkpoint after checkpoint (`history_after`), the rows kept are those of the window,
    at most `HISTORY_MAX`, oldest first; `render` gives the compressed array and the org's
    tier-change members of exactly those rows."""
    history: list[Any] = []
    everything: list[Any] = []
    now = START
    for seconds, micros, changes, _reloaded in steps:
        now += timedelta(seconds=seconds, microseconds=micros)
        rows = [_change(now, *c) for c in changes]
        everything += [
            [c["changed_at"], c["channel"], c["previous_tier"], c["tier"], c["rate"], c["cause"]]
            for c in rows
        ]
        history = history_after(history, rows, now, CFG)
        start = now - timedelta(days=CFG.window_days)
        in_window = [r for r in everything if datetime.fromisoformat(r[0]) >= start]
        assert history == in_window[-HISTORY_MAX:]
        assert render(history, now) == _expected(history, now)


def test_members_leave_the_horizon_and_rows_the_window() -> None:
    history = history_after([], [_change(START, None, None, "low")], START, CFG)
    assert len(render(history, START + timedelta(days=6, hours=23))[1]) == 1
    packed, members = render(history, START + timedelta(days=7, seconds=1))
    assert members == () and packed is not None
    gone = START + timedelta(days=CFG.window_days, seconds=1)
    assert history_after(history, [], gone, CFG) == []
    assert render([], gone) == (None, ())


def test_history_json_is_the_api_items_newest_first() -> None:
    """The stored form the API serves as `tier-history` (SPEC §7.4): one object per row with
    these field names, newest first."""
    rows = [
        ["2026-11-01T10:00:00+00:00", None, None, "low", 25.0, "event"],
        ["2026-11-02T10:00:00+00:00", "sms", "low", "high", 60.5, "expiry"],
    ]
    assert orjson.loads(history_json(rows)) == [
        {
            "changed_at": "2026-11-02T10:00:00+00:00",
            "channel": "sms",
            "previous_tier": "low",
            "tier": "high",
            "rate": 60.5,
            "cause": "expiry",
        },
        {
            "changed_at": "2026-11-01T10:00:00+00:00",
            "channel": None,
            "previous_tier": None,
            "tier": "low",
            "rate": 25.0,
            "cause": "event",
        },
    ]
    assert history_json([]) == b"[]"
