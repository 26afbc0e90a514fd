"""A contact's tier history as Redis shows it, kept rendered between checkpoints.

Every checkpoint writes a dirty contact's history (SPEC §7.4 `tier-history`) and its overall
tier changes of the last 7 days (the org's tier-change sets) to Redis. Rebuilding both from the
stored rows each time (`history_after`, `change_members`, `history_json`:
every `changed_at` parsed, every row turned into a dict and encoded, the array compressed) cost
a third of a checkpoint's time per contact in the bench's profile, though the history changes
only when the contact's tiers do or when a row leaves the window or the 7-day horizon.

So the hot contact keeps a `HistoryView`: the compressed array, the members, and the moment
(`valid_until`) the first row would leave the window or one of the members the horizon. A
checkpoint without tier changes before that moment reuses the view as it is; one with changes
renders it again. What it yields is, byte for byte, what rendering the history afresh gives for
the same time (a property test compares them). `history_moment` caches the parsed times.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from agents.org_index import CHANGES_HORIZON_SECONDS, change_members
from agents.stored import HISTORY_MAX, HistoryEntry, StoredContact, history_moment
from counting import CountingConfig
from counting.timeutil import to_us
from engagement_monitor.snapshot_codec import pack_snapshot

_HORIZON_US = CHANGES_HORIZON_SECONDS * 1_000_000
_NEVER = 2**63 - 1

Members = tuple[tuple[str, str], ...]


def history_after(
    history: list[HistoryEntry],
    changes: list[dict[str, Any]],
    now: datetime,
    cfg: CountingConfig,
) -> list[HistoryEntry]:
    """The contact's tier changes of the window (SPEC §7.4), oldest first, the new ones added:
    older than the window or beyond the most recent HISTORY_MAX, they are dropped."""
    start = to_us(now) - cfg.window_us
    added = [
        [c["changed_at"], c["channel"], c["previous_tier"], c["tier"], c["rate"], c["cause"]]
        for c in changes
    ]
    kept = [e for e in history + added if history_moment(e[0])[0] >= start]
    return kept[-HISTORY_MAX:]


def history_json(history: list[HistoryEntry]) -> bytes:
    """The Redis form of a history: the API's `tier-history` items, newest first (a row
    that is not the six fields of `HistoryEntry` fails to unpack). Dict displays rather than
    `dict(zip(keys, row))`: half the time, and every written contact whose tiers changed
    renders its whole history."""
    return orjson.dumps(
        [
            {
                "changed_at": changed_at,
                "channel": channel,
                "previous_tier": previous,
                "tier": tier,
                "rate": rate,
                "cause": cause,
            }
            for changed_at, channel, previous, tier, rate, cause in reversed(history)
        ]
    )


@dataclass(frozen=True, slots=True)
class HistoryView:
    """What a contact's history gave at its last checkpoint, and until when it holds."""

    packed: bytes | None  # the JSON array, newest first, stored like a snapshot (None: empty)
    members: Members  # its overall tier changes of the last 7 days (`change_members`)
    valid_until: int  # µs: from then on a row may leave the window or the horizon
    built_at: int  # µs: the time it was built for (a clock set back rebuilds it too)


def advance(
    stored: StoredContact,
    view: HistoryView | None,
    changes: list[dict[str, Any]],
    now: datetime,
    cfg: CountingConfig,
) -> HistoryView:
    """The view of `stored.history` once `changes` are added at `now` (rows older than the
    window or beyond the most recent `HISTORY_MAX` dropped from `stored.history` by
    `history_after`). `view`: the contact's view from its previous checkpoint, or None (the
    contact was just loaded)."""
    now_us = to_us(now)
    if view is not None and not changes and view.built_at <= now_us < view.valid_until:
        return view
    before = len(stored.history)
    if changes or stored.history:
        stored.history = history_after(stored.history, changes, now, cfg)
    history = stored.history
    if (
        view is not None
        and view.built_at <= now_us < view.valid_until
        and len(history) == before + len(changes)
    ):
        # Rows only added, none left the window, the horizon or the last HISTORY_MAX: the
        # members the view holds still stand, and the new rows' come first (newest first).
        packed: bytes | None = pack_snapshot(history_json(history))
        members = change_members(history[before:], now) + view.members
    else:
        packed, members = render(history, now)
    if not history:
        return HistoryView(packed, members, _NEVER, now_us)
    # The first moment a row leaves the window, or one `change_members` took (newest first,
    # up to the first row older than the horizon) leaves the horizon.
    moments = [history_moment(entry[0]) for entry in history]
    until = min(at for at, _ in moments) + cfg.window_us
    since = now.timestamp() - CHANGES_HORIZON_SECONDS
    for _, second in reversed(moments):
        if second < since:
            break
        until = min(until, second * 1_000_000 + _HORIZON_US)
    return HistoryView(packed, members, until, now_us)


def render(history: list[HistoryEntry], now: datetime) -> tuple[bytes | None, Members]:
    """What Redis shows of a history at `now`: the compressed `tier-history` array (None when
    empty) and the overall tier changes of the last 7 days (`change_members`)."""
    if not history:
        return None, ()
    return pack_snapshot(history_json(history)), change_members(history, now)
