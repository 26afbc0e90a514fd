"""The monitor snapshot of SPEC §4, built as plain dicts from the day buckets.

The window is applied as of ``now`` without mutating the state, so a snapshot built later
expires messages even if nobody pruned the state yet.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from counting.config import METRICS, CountingConfig
from counting.contrib import (
    DISPATCHED,
    FIGURES,
    LANE,
    RATE_RULES,
    SHOWN_AS_ALL,
    SHOWN_FIGURES,
    TABLE_INDEX_MASK,
    unpack,
)
from counting.rates import as_number, percent, tier_of
from counting.send_times import Hours, best_send_times, scan_interactions
from counting.state import ContactState
from counting.subscriptions import status
from counting.tiering import TierMap, tier_changes, tiers
from counting.timeutil import DAY_US, iso, iso_seconds, to_us

__all__ = [
    "TierMap",
    "build_snapshot",
    "current_tiers",
    "tier_changes",
    "tiers",
    "window_totals",
]


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


def _channel_order(channels: set[str], cfg: CountingConfig) -> list[str]:
    known = [c for c in cfg.channels if c in channels]
    if len(known) == len(channels):
        return known
    return known + sorted(channels.difference(cfg.channels))


# The lanes of a packed total in ``FIGURES`` order.
_figures = unpack


_ZERO = (0,) * len(FIGURES)
_NO_FIELDS: dict[str, Any] = {}
_last_iso: list[tuple[int, str]] = [(-1, "")]


def _iso_now(now_us: int) -> str:
    # Every contact of a checkpoint is snapshotted at the same instant.
    last = _last_iso[0]
    if last[0] == now_us:
        return last[1]
    text = iso(now_us)
    _last_iso[0] = (now_us, text)
    return text


def _ratio(numerator: int, denominator: int) -> float | None:
    """``percent`` as the float the snapshot shows (``rates.hundredths_half_up`` inlined)."""
    if denominator <= 0:
        return None
    return ((numerator * 20000 + denominator) // (2 * denominator)) / 100


# Channel entries depend only on (channel, status, figures), and figures are small numbers that
# repeat across contacts: built once, then shared (snapshots are serialised, never mutated).
CHANNEL_ENTRY_CACHE = 65_536


# (figure shown, lane it is read from) for orgs that exclude machine events, and for the others.
_SHOWN_LANES: dict[bool, tuple[tuple[str, int], ...]] = {
    excluded: tuple(
        (name, LANE[name if excluded else SHOWN_AS_ALL.get(name, name)]) for name in SHOWN_FIGURES
    )
    for excluded in (True, False)
}
_DELIVERED, _ENGAGED, _ENGAGED_ALL = LANE["delivered"], LANE["engaged"], LANE["engaged_all"]


def _channel_entry(
    status_text: str,
    counts: tuple[int, ...],
    tracked: tuple[bool, bool, bool, bool],
    excluded: bool,
) -> dict[str, Any]:
    """A channel's figures, rates and engagement, all driven by ``contrib``'s tables."""
    entry: dict[str, Any] = {"status": status_text}
    for name, lane in _SHOWN_LANES[excluded]:
        entry[name] = counts[lane]
    enabled = dict(zip(METRICS, tracked, strict=True))
    entry["rates"] = {
        name: _ratio(entry[num], entry[den]) if metric is None or enabled[metric] else None
        for name, num, den, metric in RATE_RULES
    }
    delivered = entry["delivered"]
    engaged = counts[_ENGAGED if excluded else _ENGAGED_ALL]
    engagement = percent(engaged, delivered)
    # SPEC §7.3: what the rate is made of; `last_engaged_at` is set per contact (it is not
    # part of what this shared entry is cached by).
    entry["engagement"] = {
        "rate": as_number(engagement),
        "tier": tier_of(engagement),
        "engaged": engaged,
        "delivered": delivered,
        "last_engaged_at": None,
    }
    return entry


def build_snapshot(
    org_id: str,
    contact_id: str,
    state: ContactState | None,
    now: datetime,
    cfg: CountingConfig,
    hours: Hours | None = None,
) -> dict[str, Any] | None:
    """None when there is nothing to show: no state, only a tombstone, only interactions
    waiting for their dispatch, or everything expired and no registration data or lists.

    ``hours``, when given, receives the contact's interactions by channel and hour of week
    (what its best send times are taken from), for the org's heatmap (SPEC §7.4 landing).

    The result may share parts with other snapshots: serialise it, do not mutate it."""
    if state is None:
        return None
    now_us = to_us(now)
    totals = window_totals(state, now_us, cfg)
    figures = {ch: _figures(v) for ch, v in totals.items() if v}
    present = set(figures)
    for channel, timeline in state.subscriptions.items():
        if timeline:
            present.add(channel)
    if state.sent_channels:  # sent on once: shown until deleted, zeros once all expired
        present.update(state.sent_channels)
    registration = (
        {k: v[2] for k, v in state.registration.items()} if state.registration else _NO_FIELDS
    )
    lists = (
        sorted(
            (
                {"list_id": list_id, "name": entry[3] if entry[3] is not None else list_id}
                for list_id, entry in state.lists.items()
                if entry[2]
            ),
            key=lambda item: item["list_id"],
        )
        if state.lists
        else []
    )
    if not present and not lists and all(v is None for v in registration.values()):
        return None

    channels: dict[str, Any] = {}
    dispatched_by_channel: dict[str, int] = {}
    delivered_total = engaged_total = 0
    histograms, latest = (
        scan_interactions(state, now_us - cfg.window_us, org_id, cfg)
        if state.messages
        else ({}, {})
    )
    if hours is not None:
        hours.update(histograms)
    subscriptions = state.subscriptions
    cache = cfg.channel_entries
    excluded = cfg.excludes_machine_events(org_id)
    engaged_lane = _ENGAGED if excluded else _ENGAGED_ALL
    for channel in _channel_order(present, cfg):
        counts = figures.get(channel, _ZERO)
        key = (channel, status(subscriptions.get(channel)), counts, excluded)
        entry = cache.get(key)
        if entry is None:
            entry = _channel_entry(key[1], counts, cfg.tracked_flags(channel), excluded)
            if len(cache) >= CHANNEL_ENTRY_CACHE:
                cache.clear()
            cache[key] = entry
        seen = latest.get(channel)
        if seen:
            engagement = {**entry["engagement"], "last_engaged_at": iso_seconds(seen)}
            entry = {**entry, "engagement": engagement}
        channels[channel] = entry
        delivered_total += counts[_DELIVERED]
        engaged_total += counts[engaged_lane]
        dispatched_by_channel[channel] = counts[DISPATCHED]
    overall = percent(engaged_total, delivered_total)
    created_at = registration.get("created_at")
    since = created_at if created_at is not None else state.first_seen
    return {
        "org_id": org_id,
        "contact_id": contact_id,
        "as_of": _iso_now(now_us),
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
        "engagement": {
            "rate": as_number(overall),
            "tier": tier_of(overall),
            "engaged": engaged_total,
            "delivered": delivered_total,
            "last_engaged_at": iso_seconds(max(latest.values())) if latest else None,
        },
        "best_send_times": best_send_times(histograms, dispatched_by_channel, org_id, cfg),
    }


def current_tiers(
    org_id: str, state: ContactState | None, now: datetime, cfg: CountingConfig
) -> TierMap:
    """``tiers(build_snapshot(org_id, ..., state, now, cfg))`` without building the snapshot.

    A checkpoint needs a contact's tiers at once (its tier changes are published, and the
    tiers are stored with the state), while the snapshot itself is built for Redis only, and
    can be built elsewhere from the stored value (`agents.snapshot_process`). This reads the
    same totals and applies the same rules as `build_snapshot`: which channels are shown, when
    there is no snapshot at all, the lanes of delivered and engaged, and the channel order.
    A property test holds the two to each other on drawn states."""
    if state is None:
        return {}
    totals = window_totals(state, to_us(now), cfg)
    figures = {ch: _figures(v) for ch, v in totals.items() if v}
    present = set(figures)
    for channel, timeline in state.subscriptions.items():
        if timeline:
            present.add(channel)
    if state.sent_channels:
        present.update(state.sent_channels)
    if (
        not present
        and not any(entry[2] for entry in state.lists.values())
        and all(v[2] is None for v in state.registration.values())
    ):
        return {}
    engaged_lane = _ENGAGED if cfg.excludes_machine_events(org_id) else _ENGAGED_ALL
    by_channel: TierMap = {}
    delivered_total = engaged_total = 0
    for channel in _channel_order(present, cfg):
        counts = figures.get(channel, _ZERO)
        delivered, engaged = counts[_DELIVERED], counts[engaged_lane]
        rate = percent(engaged, delivered)
        by_channel[channel] = (tier_of(rate), as_number(rate))
        delivered_total += delivered
        engaged_total += engaged
    overall = percent(engaged_total, delivered_total)
    result: TierMap = {None: (tier_of(overall), as_number(overall))}
    result.update(by_channel)
    return result
