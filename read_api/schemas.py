"""Request and response bodies of the API (the snapshot itself is ``models.snapshot.Snapshot``).

Field constraints for contact data are the ones of ``models.events`` (the records the worker
accepts), so an edit the worker would dead-letter is refused here with a 422 a person can act on.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from models.events import Email, Name, Phone
from models.origin import Origin
from models.tiers import Tier
from read_api.tokens import Role

ListName = Annotated[str, Field(min_length=1, max_length=256)]
MessageText = Annotated[str, Field(min_length=1, max_length=4096)]
TemplateId = Annotated[str, Field(min_length=1, max_length=128)]
VariableName = Annotated[str, Field(min_length=1, max_length=64)]
VariableValue = Annotated[str, Field(max_length=1024)]


class Problem(BaseModel):
    """Every error answer: one sentence that says what to do."""

    detail: str


class FieldProblem(BaseModel):
    field: str
    message: str


class ValidationProblem(BaseModel):
    """A 422: ``detail`` joins the problems; ``errors`` lists them one by one."""

    detail: str
    errors: list[FieldProblem]


class WhoAmI(BaseModel):
    org_id: str
    role: Role
    name: str
    may_write: bool
    channels: list[str] = Field(description="The channels this deployment counts, in order.")


class SegmentItem(BaseModel):
    contact_id: str
    name: str | None = Field(None, description="The contact's name (SPEC §7.4), null when none.")
    rate: float = Field(description="Engagement rate (percent) that placed the contact here.")


class SegmentPage(BaseModel):
    tier: Tier
    channel: str | None = Field(description="null: the overall segment")
    items: list[SegmentItem]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page."
    )


class ContactPatch(BaseModel):
    """Registration fields to change. Absent fields are left alone; ``null`` clears one."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    phone: Phone | None = Field(None, description="E.164, e.g. +5511999990000")
    email: Email | None = None
    origin: Origin | None = None

    @model_validator(mode="after")
    def _something_to_change(self) -> ContactPatch:
        if not self.model_fields_set:
            raise ValueError("nothing to change: give at least one of name, phone, email, origin")
        return self


class ListPut(BaseModel):
    """Optional body of "include in a list": the list's display name."""

    model_config = ConfigDict(extra="forbid")

    name: ListName | None = None


class MessageRequest(BaseModel):
    """Ask the messaging pipeline to send one message: either a text or a template."""

    model_config = ConfigDict(extra="forbid")

    channel: str = Field(description="One of the configured channels (see /v1/whoami).")
    text: MessageText | None = None
    template_id: TemplateId | None = None
    variables: dict[VariableName, VariableValue] = Field(
        default_factory=dict, max_length=50, description="Template variables."
    )

    @model_validator(mode="after")
    def _text_or_template(self) -> MessageRequest:
        if (self.text is None) == (self.template_id is None):
            raise ValueError("give exactly one of text or template_id")
        return self


class Accepted(BaseModel):
    """A write command was published; the snapshot changes once the worker applies it."""

    accepted: Literal[True] = True
    event_id: str = Field(description="event_id of the record published to Kafka")
    topic: str


class MessageAccepted(BaseModel):
    accepted: Literal[True] = True
    request_id: str
    topic: str


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    redis: str
    kafka: str


class TierCounts(BaseModel):
    """Contacts per tier; `none`: contacts (showing the channel) without a tier yet."""

    no_engagement: int
    low: int
    high: int
    very_high: int
    none: int


class OverviewTiers(BaseModel):
    overall: TierCounts
    by_channel: dict[str, TierCounts]


class SubscriptionCounts(BaseModel):
    subscribed: int
    unsubscribed: int


class Overview(BaseModel):
    """The org at a glance (SPEC §7.4), exact at `as_of`: counts the worker keeps in the
    landing of every snapshot, read in one Redis transaction."""

    as_of: str
    contacts: int
    tiers: OverviewTiers
    subscriptions: dict[str, SubscriptionCounts]


class HeatmapChannel(BaseModel):
    total: int = Field(description="Counted interactions of the window on this channel.")
    hours: list[list[int]] = Field(
        description="7 rows, Monday first, of 24 hourly counts, in the org's time zone."
    )


class Heatmap(BaseModel):
    """Interactions by hour of week: each message's first counted open, click and reply of the
    window, as the best send times count them (issue 15)."""

    as_of: str
    timezone: str
    window_days: int
    channels: dict[str, HeatmapChannel]


class DirectionCounts(BaseModel):
    """Tier changes by direction: `new` is a first tier, `lost` a tier lost (no delivery left
    in the window, or the contact deleted)."""

    up: int
    down: int
    new: int
    lost: int


class RecentTierChange(BaseModel):
    changed_at: str
    contact_id: str
    name: str | None
    previous_tier: Tier | None
    tier: Tier | None


class TierChangesSummary(BaseModel):
    """How the overall tiers moved lately, exact at `as_of` (issue 15): counts of the last 24
    hours and 7 days, and the newest changes."""

    as_of: str
    last_24h: DirectionCounts
    last_7d: DirectionCounts
    recent: list[RecentTierChange]


class SearchItem(BaseModel):
    contact_id: str
    name: str | None
    email: str | None
    phone: str | None
    tier: Tier | None = Field(description="The overall engagement tier.")
    rate: float | None = Field(description="The overall engagement rate (percent).")


class SearchPage(BaseModel):
    items: list[SearchItem]
    next_cursor: str | None = Field(
        description="Pass as `cursor` (with the same `q`) for the next page; null on the last."
    )


class TierChangeItem(BaseModel):
    changed_at: str
    channel: str | None = Field(description="null: the overall tier")
    previous_tier: Tier | None
    tier: Tier | None
    rate: float | None
    cause: Literal["event", "expiry"]


class TierHistory(BaseModel):
    """The contact's tier changes of the window, newest first (SPEC §7.4)."""

    items: list[TierChangeItem]
