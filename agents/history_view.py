"""A contact's tier history as Redis shows it (SPEC §7.4 `tier-history`), and its overall tier
changes of the last 7 days (the org's tier-change sets).

The checkpoint keeps the rows in the table value (`history_after`: the window's, the newest
`HISTORY_MAX`); whoever renders a contact's Redis job (`agents.processor.render_job`, in the
snapshot process) turns them into the compressed array and the members (`render`).

Until session 15 the worker kept each hot contact's history rendered between checkpoints
(a `HistoryView`, reused while no row changed), because rendering cost a third of a
checkpoint's time per contact. Rendering now happens beside the snapshot, in the snapshot
process, off the worker's core, from the table value alone; a cache there would have to be
kept per contact in another process for little gain. `history_moment` caches parsed times.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from agents.org_index import change_members
from agents.stored import HISTORY_MAX, HistoryEntry, history_moment
from counting import CountingConfig
from counting.timeutil import to_us
from engagement_monitor.snapshot_codec import pack_snapshot

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


def render(history: list[HistoryEntry], now: datetime) -> tuple[bytes | None, Members]:
    """What Redis shows of a history at `now`: the compressed `tier-history` array (None when
    empty) and the overall tier changes of the last 7 days (`change_members`)."""
    if not history:
        return None, ()
    return pack_snapshot(history_json(history)), change_members(history, now)
