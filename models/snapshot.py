"""The monitor snapshot of one contact (SPEC §4), as the read API serves it.

The worker builds these as plain dicts (``counting.build_snapshot``) because constructing
pydantic objects per contact per batch would cost more than the counting itself; these
models document the shape and let the API validate and publish it in OpenAPI.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from models.tiers import Tier


class OriginView(BaseModel):
    """``type`` and rendered ``label`` plus the origin's own fields (app, file, …)."""

    model_config = ConfigDict(extra="allow")

    type: str
    label: str


class Registration(BaseModel):
    name: str | None
    phone: str | None
    email: str | None
    contact_since: datetime | None
    origin: OriginView | None


class ListMembership(BaseModel):
    list_id: str
    name: str


class Rates(BaseModel):
    """Percentages with 2 decimals; null when not tracked or nothing to divide by."""

    delivery: float | None
    open: float | None
    click: float | None
    response: float | None
    # SPEC §7.2: bounced / dispatched and complained / delivered, on every channel.
    bounce: float | None
    complaint: float | None


class Engagement(BaseModel):
    rate: float | None
    tier: Tier | None
    # SPEC §7.3: the counts the rate is made of, and the latest counted interaction.
    engaged: int
    delivered: int
    last_engaged_at: datetime | None


class ChannelFigures(BaseModel):
    status: Literal["subscribed", "unsubscribed"]
    dispatched: int
    sending_errors: int
    delivered: int
    opened: int
    clicked: int
    replied: int
    # SPEC §7.1: messages with at least one open by a privacy proxy / click by a bot. With
    # machine events excluded (the default) they are not in opened / clicked / engaged.
    machine_opened: int
    bot_clicked: int
    # SPEC §7.2: messages with a bounce and no delivery or interaction; the hard ones; spam
    # complaints.
    bounced: int
    hard_bounced: int
    complained: int
    rates: Rates
    engagement: Engagement


class Dispatched(BaseModel):
    total: int
    by_channel: dict[str, int]


class BestHour(BaseModel):
    weekday: Literal["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    hour: int
    interactions: int


class BestSendTimes(BaseModel):
    timezone: str
    top_hours: list[BestHour]
    weekly_frequency: float


class Snapshot(BaseModel):
    model_config = ConfigDict(extra="forbid")

    org_id: str
    contact_id: str
    as_of: datetime
    window_days: int
    registration: Registration
    lists: list[ListMembership]
    channels: dict[str, ChannelFigures]
    dispatched: Dispatched
    engagement: Engagement
    best_send_times: dict[str, BestSendTimes]
