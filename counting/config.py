"""Counting configuration: everything the pure core needs to know, and nothing about Kafka."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

from counting.contrib import build_table

METRICS = ("delivery", "open", "click", "response")

DEFAULT_CHANNELS: tuple[str, ...] = ("sms", "email", "whatsapp")

DEFAULT_TRACKED: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "sms": frozenset({"delivery", "click", "response"}),
        "email": frozenset({"delivery", "open", "click"}),
        "whatsapp": frozenset({"delivery", "open", "click", "response"}),
    }
)

DAY_US = 86_400 * 1_000_000


@dataclass(frozen=True)
class CountingConfig:
    """Frozen so that one instance can be shared by every agent without defensive copies.

    A channel that is configured but absent from ``tracked`` tracks all four metrics: a new
    channel should show every rate until somebody says it cannot measure one.
    """

    channels: tuple[str, ...] = DEFAULT_CHANNELS
    tracked: Mapping[str, frozenset[str]] = field(default_factory=lambda: DEFAULT_TRACKED)
    window_days: int = 90
    pending_max_per_contact: int = 200
    pending_max_seconds: int = 86_400
    dedupe_max_per_contact: int = 256
    future_tolerance_seconds: int = 300
    max_record_bytes: int = 65_536
    org_timezones: Mapping[str, str] = field(default_factory=dict)
    default_timezone: str = "UTC"
    # SPEC §7.1: a click less than this after its message's delivery (or dispatch) is a bot's;
    # machine opens and bot clicks are left out of opened / clicked / engaged and best send
    # times unless the org's setting says otherwise.
    bot_click_seconds: float = 2.0
    exclude_machine_events: bool = True
    org_exclude_machine_events: Mapping[str, bool] = field(default_factory=dict)

    # Derived once, so the hot path only does dictionary look-ups.
    window_us: int = field(init=False, repr=False, compare=False)
    bot_click_us: int = field(init=False, repr=False, compare=False)
    _tables: dict[str, tuple[int, ...]] = field(init=False, repr=False, compare=False)
    _flags: dict[str, tuple[bool, bool, bool, bool]] = field(init=False, repr=False, compare=False)
    # Snapshot parts already built (counting.snapshot), per configuration.
    channel_entries: dict[Any, dict[str, Any]] = field(init=False, repr=False, compare=False)
    send_time_entries: dict[Any, dict[str, Any]] = field(init=False, repr=False, compare=False)
    _zones: dict[str, ZoneInfo] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 1 <= self.window_days <= 3000:
            # The codec stores dispatch times as 48-bit µs offsets (8.9 years).
            raise ValueError("window_days must be between 1 and 3000")
        unknown = {m for ms in self.tracked.values() for m in ms} - set(METRICS)
        if unknown:
            raise ValueError(f"unknown tracked metric(s): {', '.join(sorted(unknown))}")
        if not 0 <= self.bot_click_seconds <= 86_400:
            raise ValueError("bot_click_seconds must be between 0 and 86400")
        object.__setattr__(self, "window_us", self.window_days * DAY_US)
        object.__setattr__(self, "bot_click_us", round(self.bot_click_seconds * 1_000_000))
        object.__setattr__(self, "_tables", {})
        object.__setattr__(self, "_flags", {})
        object.__setattr__(self, "channel_entries", {})
        object.__setattr__(self, "send_time_entries", {})
        zones = {
            name: ZoneInfo(name) for name in {self.default_timezone, *self.org_timezones.values()}
        }
        object.__setattr__(self, "_zones", zones)

    def tracks(self, channel: str) -> frozenset[str]:
        return self.tracked.get(channel, frozenset(METRICS))

    def tracked_flags(self, channel: str) -> tuple[bool, bool, bool, bool]:
        """Whether the channel tracks each of ``METRICS``, in that order (cached)."""
        flags = self._flags.get(channel)
        if flags is None:
            tracked = self.tracks(channel)
            flags = self._flags[channel] = (
                "delivery" in tracked,
                "open" in tracked,
                "click" in tracked,
                "response" in tracked,
            )
        return flags

    def table(self, channel: str) -> tuple[int, ...]:
        """Contribution table of a channel, built on first use (channels may be free text)."""
        table = self._tables.get(channel)
        if table is None:
            table = build_table(self.tracks(channel))
            self._tables[channel] = table
        return table

    def excludes_machine_events(self, org_id: str) -> bool:
        """Whether the org's opened / clicked / engaged leave out machine opens and bot clicks."""
        return self.org_exclude_machine_events.get(org_id, self.exclude_machine_events)

    def timezone_name(self, org_id: str) -> str:
        return self.org_timezones.get(org_id, self.default_timezone)

    def timezone(self, org_id: str) -> ZoneInfo:
        return self._zones[self.timezone_name(org_id)]
