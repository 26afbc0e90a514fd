"""The history a checkpoint keeps rendered between checkpoints (`agents.history_view`) is, at
every checkpoint, byte for byte what rendering the stored rows from scratch gives: the rows kept,
the compressed array Redis stores and the org's tier-change members, as time passes rows out of
the window and the 7-day horizon, with and without new changes, and after a restart."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.history_view import HistoryView, advance, history_after, history_json
from agents.org_index import change_members
from agents.stored import HISTORY_MAX, StoredContact
from counting import ContactState, CountingConfig
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
def test_the_view_equals_the_history_rendered_from_scratch(steps: list[Any]) -> None:
    reference: list[Any] = []
    stored = StoredContact(ContactState())
    view: HistoryView | None = None
    now = START
    for seconds, micros, changes, reloaded in steps:
        now += timedelta(seconds=seconds, microseconds=micros)
        rows = [_change(now, *c) for c in changes]
        if reloaded:  # a contact read back from the table has no view yet
            view = None
        view = advance(stored, view, rows, now, CFG)
        if rows or reference:
            reference = history_after(reference, rows, now, CFG)
        assert stored.history == reference
        assert (view.packed, view.members) == _expected(reference, now)
        assert len(stored.history) <= HISTORY_MAX


def test_a_checkpoint_without_changes_reuses_the_view_until_a_row_leaves_the_horizon() -> None:
    stored = StoredContact(ContactState())
    first = advance(stored, None, [_change(START, None, None, "low")], START, CFG)
    assert len(first.members) == 1
    later = START + timedelta(days=6, hours=23)
    assert advance(stored, first, [], later, CFG) is first  # nothing rendered again
    past = START + timedelta(days=7, seconds=1)
    moved = advance(stored, first, [], past, CFG)
    assert moved is not first and moved.members == () and len(stored.history) == 1
    gone = advance(stored, moved, [], START + timedelta(days=CFG.window_days, seconds=1), CFG)
    assert gone.packed is None and stored.history == []


def test_a_clock_set_back_renders_the_view_again() -> None:
    stored = StoredContact(ContactState())
    first = advance(stored, None, [_change(START, None, None, "low")], START, CFG)
    after_horizon = advance(stored, first, [], START + timedelta(days=8), CFG)
    assert after_horizon.members == ()
    back = advance(stored, after_horizon, [], START + timedelta(days=1), CFG)
    assert back.members == change_members(stored.history, START + timedelta(days=1)) != ()


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
