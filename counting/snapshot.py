"""The monitor snapshot of SPEC §4, built as plain dicts from the day buckets.

The window is applied as of ``now`` without mutating the state, so a snapshot built later
expires messages even if nobody pruned the state yet.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from counting.config import CountingConfig
from counting.contrib import (
    CLICKED,
    DELIVERED,
    DISPATCHED,
    ENGAGED,
    FIGURES,
    OPENED,
    REPLIED,
    TABLE_INDEX_MASK,
    unpack,
)
from counting.rates import as_number, percent, tier_of
from counting.send_times import best_send_times
from counting.state import ContactState
from counting.subscriptions import status
from counting.tiering import TierMap, tier_changes, tiers
from counting.timeutil import DAY_US, iso, to_us

__all__ = ["TierMap", "build_snapshot", "tier_changes", "tiers", "window_totals"]


def window_totals(state: ContactState, now_us: int, cfg: CountingConfig) -> dict[str, int]:
    """Packed totals per channel over the messages dispatched in the window."""
    start = now_us - cfg.window_us
    start_day = start // DAY_US
    exact = state.oldest_dispatch is None or state.oldest_dispatch >= start
    totals: dict[str, int] = {}
    for channel, days in state.buckets.items():
        if exact:
            totals[channel] = sum(days.values())
        else:
            totals[channel] = sum(v for day, v in days.items() if day > start_day)
    if not exact:
        # Only the boundary day can hold messages on both sides of the window start.
        for record in state.messages.values():
            at = record.dispatched_at
            if at is not None and at >= start and at // DAY_US == start_day:
                table = cfg.table(record.channel)
                totals[record.channel] += table[record.flags & TABLE_INDEX_MASK]
    return totals


def _rate(numerator: int, denominator: int, metric: str, tracked: frozenset[str]) -> int | None:
    return percent(numerator, denominator) if metric in tracked else None


def _channel_order(channels: set[str], cfg: CountingConfig) -> list[str]:
    known = [c for c in cfg.channels if c in channels]
    return known + sorted(channels.difference(cfg.channels))


def build_snapshot(
    org_id: str,
    contact_id: str,
    state: ContactState | None,
    now: datetime,
    cfg: CountingConfig,
) -> dict[str, Any] | None:
    """None when there is nothing to show: no state, only a tombstone, only interactions
    waiting for their dispatch, or everything expired and no registration data or lists."""
    if state is None:
        return None
    now_us = to_us(now)
    totals = window_totals(state, now_us, cfg)
    figures = {ch: unpack(v) for ch, v in totals.items() if v}
    present = set(figures) | {ch for ch, timeline in state.subscriptions.items() if timeline}
    registration = {k: v[2] for k, v in state.registration.items()}
    lists = sorted(
        (
            {"list_id": list_id, "name": entry[3] if entry[3] is not None else list_id}
            for list_id, entry in state.lists.items()
            if entry[2]
        ),
        key=lambda item: item["list_id"],
    )
    if not present and not lists and all(v is None for v in registration.values()):
        return None

    channels: dict[str, Any] = {}
    dispatched_by_channel: dict[str, int] = {}
    delivered_total = engaged_total = 0
    zero = (0,) * len(FIGURES)
    for channel in _channel_order(present, cfg):
        counts = figures.get(channel, zero)
        tracked = cfg.tracks(channel)
        dispatched, delivered = counts[DISPATCHED], counts[DELIVERED]
        engagement = percent(counts[ENGAGED], delivered)
        delivered_total += delivered
        engaged_total += counts[ENGAGED]
        dispatched_by_channel[channel] = dispatched
        entry: dict[str, Any] = {"status": status(state.subscriptions.get(channel))}
        entry.update(zip(FIGURES[:6], counts[:6], strict=True))
        entry["rates"] = {
            "delivery": as_number(_rate(delivered, dispatched, "delivery", tracked)),
            "open": as_number(_rate(counts[OPENED], delivered, "open", tracked)),
            "click": as_number(_rate(counts[CLICKED], delivered, "click", tracked)),
            "response": as_number(_rate(counts[REPLIED], delivered, "response", tracked)),
        }
        entry["engagement"] = {"rate": as_number(engagement), "tier": tier_of(engagement)}
        channels[channel] = entry
    overall = percent(engaged_total, delivered_total)
    created_at = registration.get("created_at")
    since = created_at if created_at is not None else state.first_seen
    return {
        "org_id": org_id,
        "contact_id": contact_id,
        "as_of": iso(now_us),
        "window_days": cfg.window_days,
        "registration": {
            "name": registration.get("name"),
            "phone": registration.get("phone"),
            "email": registration.get("email"),
            "contact_since": None if since is None else iso(since),
            "origin": registration.get("origin"),
        },
        "lists": lists,
        "channels": channels,
        "dispatched": {
            "total": sum(dispatched_by_channel.values()),
            "by_channel": dispatched_by_channel,
        },
        "engagement": {"rate": as_number(overall), "tier": tier_of(overall)},
        "best_send_times": best_send_times(
            state, dispatched_by_channel, now_us - cfg.window_us, org_id, cfg
        ),
    }
