"""SPEC §7.4 tier history: kept beside the published tiers, pruned to the window and a cap,
read back by releases that wrote none."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson

from agents.history_view import history_after, history_json
from agents.stored import HISTORY_MAX, StoredContact, pack, unpack
from counting import ContactState, CountingConfig

CFG = CountingConfig()
NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def change(days_ago: float, tier: str, previous: str | None = None) -> dict[str, object]:
    at = (NOW - timedelta(days=days_ago)).isoformat().replace("+00:00", "Z")
    return {
        "changed_at": at,
        "channel": None,
        "previous_tier": previous,
        "tier": tier,
        "rate": 50.0,
        "cause": "event",
    }


def test_history_keeps_the_window_and_the_most_recent_changes() -> None:
    history = history_after([], [change(95, "low"), change(89, "high", "low")], NOW, CFG)
    assert [h[3] for h in history] == ["high"]  # 95 days ago has left the window
    many = history_after(history, [change(1, "low", "high")] * (HISTORY_MAX + 5), NOW, CFG)
    assert len(many) == HISTORY_MAX and many[-1][3] == "low"
    items = orjson.loads(
        history_json(history_after([], [change(2, "low"), change(1, "high")], NOW, CFG))
    )
    assert [i["tier"] for i in items] == ["high", "low"]  # newest first
    assert set(items[0]) == {"changed_at", "channel", "previous_tier", "tier", "rate", "cause"}


def test_history_survives_the_table_value_and_old_values_read_without_one() -> None:
    stored = StoredContact(ContactState(), {None: ("high", 55.0)}, 7)
    stored.history = history_after([], [change(3, "high", "low")], NOW, CFG)
    again = unpack(pack(stored, None), CFG)
    assert (again.history, again.published, again.version) == (
        stored.history,
        stored.published,
        7,
    )
    plain = StoredContact(ContactState(), {None: ("high", 55.0)}, 8)
    value = pack(plain, None)
    assert b'"h"' not in value  # a contact without changes keeps the plain row list
    assert unpack(value, CFG).history == []
