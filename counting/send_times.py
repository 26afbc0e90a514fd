"""Best send times: when, in the org's local week, this contact interacts with messages.

Counted per message (its first open, first click and first reply), so a contact who opens
one e-mail ten times does not outweigh ten e-mails opened once. Only interactions the channel
tracks are counted, matching the rates the screen shows.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from counting.clicks import any_click_seconds, person_click_seconds
from counting.config import CountingConfig
from counting.contrib import (
    F_CLICK,
    F_MACHINE_OPEN,
    F_OPEN,
    F_REPLY,
    F_SENDING_ERROR,
    INTERACTIONS,
    MACHINE,
)
from counting.rates import as_number, hundredths_half_up
from counting.state import ContactState, MessageRecord

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
TOP_HOURS = 3
_EPOCH_HOUR_OF_WEEK = 72  # 1970-01-01 00:00 UTC was a Thursday


def hour_of_week(seconds: int, zone: ZoneInfo) -> int:
    """0 = Monday 00:00-00:59 … 167 = Sunday 23:00-23:59, in ``zone``."""
    if zone.key == "UTC":
        return (seconds // 3600 + _EPOCH_HOUR_OF_WEEK) % 168
    local = datetime.fromtimestamp(seconds, zone)
    return local.weekday() * 24 + local.hour


Hours = dict[str, dict[int, int]]  # channel -> hour of week -> counted interactions


def _interaction_times(record: MessageRecord, excluded: bool, bot_us: int) -> tuple[int, int, int]:
    """Epoch seconds of the message's counted first open, click and reply (0 = none). With
    machine events excluded (SPEC §7.1) only people's count; otherwise the earliest of any."""
    flags = record.flags
    if excluded:
        opened = record.first_open if flags & F_OPEN else 0
        clicked = person_click_seconds(record, bot_us) if flags & F_CLICK else 0
    else:
        person = record.first_open if flags & F_OPEN else 0
        machine = record.first_machine_open if flags & F_MACHINE_OPEN else 0
        opened = min(person, machine) if person and machine else person or machine
        clicked = any_click_seconds(record)
    return opened, clicked, record.first_reply if flags & F_REPLY else 0


def scan_interactions(
    state: ContactState, start: int, org_id: str, cfg: CountingConfig
) -> tuple[Hours, dict[str, int]]:
    """One pass over the messages in the window that were interacted with: per channel, the
    hours of week of their first open / click / reply the channel tracks (best send times),
    and the epoch seconds of the latest counted open, click or reply of any kind
    (`last_engaged_at`, SPEC §7.3). Sending errors count for neither; machine opens and bot
    clicks only for orgs that do not exclude them."""
    zone = cfg.timezone(org_id)
    utc = zone.key == "UTC"
    excluded = cfg.excludes_machine_events(org_id)
    counted_bits = INTERACTIONS if excluded else INTERACTIONS | MACHINE
    bot_us = cfg.bot_click_us
    histograms: Hours = {}
    latest: dict[str, int] = {}
    counted: dict[str, tuple[bool, bool, bool]] = {}
    for record in state.messages.values():
        flags = record.flags
        if not flags & counted_bits:
            continue  # no interaction: nothing to place in the week
        at = record.dispatched_at
        if at is None or at < start or flags & F_SENDING_ERROR:
            continue
        opened, clicked, replied = _interaction_times(record, excluded, bot_us)
        channel = record.channel
        last = max(opened, clicked, replied)
        if last > latest.get(channel, 0):
            latest[channel] = last
        tracked = counted.get(channel)
        if tracked is None:
            _, opens, clicks, responses = cfg.tracked_flags(channel)
            tracked = counted[channel] = (opens, clicks, responses)
            histograms[channel] = {}
        histogram = histograms[channel]
        for seconds, counts in ((opened, tracked[0]), (clicked, tracked[1]), (replied, tracked[2])):
            if seconds and counts:
                how = (
                    (seconds // 3600 + _EPOCH_HOUR_OF_WEEK) % 168
                    if utc
                    else hour_of_week(seconds, zone)
                )
                histogram[how] = histogram.get(how, 0) + 1
    return histograms, latest


def best_send_times(
    histograms: Hours,
    channels: dict[str, int],
    org_id: str,
    cfg: CountingConfig,
) -> dict[str, dict[str, Any]]:
    """``channels`` maps each shown channel to its dispatched count in the window;
    ``histograms`` comes from `scan_interactions`.

    Entries are shared between snapshots (cached by what they show): do not mutate them.
    """
    zone = cfg.timezone(org_id)
    cache = cfg.send_time_entries
    result: dict[str, dict[str, Any]] = {}
    for channel, dispatched in channels.items():
        counts_by_hour = histograms.get(channel)
        # Busiest first, then earliest in the week (hours are distinct, so no ties): sorting
        # (-count, hour) pairs needs no key function call per hour.
        top = (
            tuple(
                (how, -n)
                for n, how in sorted([(-n, how) for how, n in counts_by_hour.items()])[:TOP_HOURS]
            )
            if counts_by_hour
            else ()
        )
        key = (zone.key, top, dispatched)
        entry = cache.get(key)
        if entry is None:
            entry = _entry(zone.key, top, dispatched, cfg.window_days)
            if len(cache) >= ENTRY_CACHE:
                cache.clear()
            cache[key] = entry
        result[channel] = entry
    return result


ENTRY_CACHE = 65_536


def _entry(
    zone: str, top: tuple[tuple[int, int], ...], dispatched: int, window_days: int
) -> dict[str, Any]:
    weekly = hundredths_half_up(dispatched * 7, window_days, scale=1)
    return {
        "timezone": zone,
        "top_hours": [
            {"weekday": WEEKDAYS[how // 24], "hour": how % 24, "interactions": n} for how, n in top
        ],
        "weekly_frequency": as_number(weekly),
    }
