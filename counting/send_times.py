"""Best send times: when, in the org's local week, this contact interacts with messages.

Counted per message (its first open, first click and first reply), so a contact who opens
one e-mail ten times does not outweigh ten e-mails opened once. Only interactions the channel
tracks are counted, matching the rates the screen shows.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from counting.config import CountingConfig
from counting.contrib import F_SENDING_ERROR
from counting.rates import as_number, hundredths_half_up
from counting.state import ContactState

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
TOP_HOURS = 3
_EPOCH_HOUR_OF_WEEK = 72  # 1970-01-01 00:00 UTC was a Thursday


def hour_of_week(seconds: int, zone: ZoneInfo) -> int:
    """0 = Monday 00:00-00:59 … 167 = Sunday 23:00-23:59, in ``zone``."""
    if zone.key == "UTC":
        return (seconds // 3600 + _EPOCH_HOUR_OF_WEEK) % 168
    local = datetime.fromtimestamp(seconds, zone)
    return local.weekday() * 24 + local.hour


def best_send_times(
    state: ContactState,
    channels: dict[str, int],
    start: int,
    org_id: str,
    cfg: CountingConfig,
) -> dict[str, dict[str, Any]]:
    """``channels`` maps each shown channel to its dispatched count in the window."""
    zone = cfg.timezone(org_id)
    histograms: dict[str, dict[int, int]] = {channel: {} for channel in channels}
    for record in state.messages.values():
        at = record.dispatched_at
        if at is None or at < start or record.flags & F_SENDING_ERROR:
            continue
        histogram = histograms.get(record.channel)
        if histogram is None:
            continue
        tracked = cfg.tracks(record.channel)
        for seconds, metric in (
            (record.first_open, "open"),
            (record.first_click, "click"),
            (record.first_reply, "response"),
        ):
            if seconds and metric in tracked:
                how = hour_of_week(seconds, zone)
                histogram[how] = histogram.get(how, 0) + 1
    result: dict[str, dict[str, Any]] = {}
    for channel, histogram in histograms.items():
        top = sorted(histogram.items(), key=lambda item: (-item[1], item[0]))[:TOP_HOURS]
        weekly = hundredths_half_up(channels[channel] * 7, cfg.window_days, scale=1)
        result[channel] = {
            "timezone": zone.key,
            "top_hours": [
                {"weekday": WEEKDAYS[how // 24], "hour": how % 24, "interactions": n}
                for how, n in top
            ],
            "weekly_frequency": as_number(weekly),
        }
    return result
