"""The engagement events as the counting core reads them: light compiled classes.

The pydantic models (`models.events`) are the contract: they say what a valid event is and why an
invalid one is refused, and they are what tests, the simulator and the JSON Schemas use. Building
one costs ~7.5 µs an event even when the fields are already known to be valid, which was the
largest single part of the worker's time (BENCHMARKS.md, session 13). These classes carry only
what the rules read, are compiled with the rest of the core (`engagement_monitor.native`) and cost
a fraction of a microsecond to build; `counting.reading` builds them straight from the record's
JSON once it has checked every field exactly as the model would.

The contact topic's events stay pydantic models in the core: they are ~1 % of the traffic, and
an upsert's meaning (an absent field is untouched, an explicit null clears it) is the model's
`model_fields_set`.

Each class has the same name and fields as its model minus ``Event`` (``DeliveryEvent`` ->
``Delivery``), so a rule reads the same either way; `lighten` turns a model into its class.
"""

from __future__ import annotations

from datetime import datetime

from models.events import (
    BounceEvent,
    ClickEvent,
    DeliveryEvent,
    DispatchEvent,
    EngagementEvent,
    OpenEvent,
    ReplyEvent,
    UnsubscribeEvent,
)


class Engagement:
    """What every engagement event has. ``occurred_at`` is timezone-aware UTC, as the model's."""

    def __init__(
        self, event_id: str, org_id: str, contact_id: str, occurred_at: datetime, channel: str
    ) -> None:
        self.event_id = event_id
        self.org_id = org_id
        self.contact_id = contact_id
        self.occurred_at = occurred_at
        self.channel = channel

    def fields(self) -> tuple[object, ...]:
        """The values the counting core reads, in a fixed order (for equality and repr)."""
        return (self.event_id, self.org_id, self.contact_id, self.occurred_at, self.channel)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, Engagement)
        return self.fields() == other.fields()

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.fields()))

    def __repr__(self) -> str:
        return f"{type(self).__name__}{self.fields()!r}"


class Message(Engagement):
    """An event about one message (every engagement event but an unsubscribe)."""

    def __init__(
        self,
        event_id: str,
        org_id: str,
        contact_id: str,
        occurred_at: datetime,
        channel: str,
        message_id: str,
    ) -> None:
        super().__init__(event_id, org_id, contact_id, occurred_at, channel)
        self.message_id = message_id

    def fields(self) -> tuple[object, ...]:
        return (*super().fields(), self.message_id)


class Dispatch(Message):
    def __init__(
        self,
        event_id: str,
        org_id: str,
        contact_id: str,
        occurred_at: datetime,
        channel: str,
        message_id: str,
        dispatch_kind: str,
    ) -> None:
        super().__init__(event_id, org_id, contact_id, occurred_at, channel, message_id)
        self.dispatch_kind = dispatch_kind

    def fields(self) -> tuple[object, ...]:
        return (*super().fields(), self.dispatch_kind)


class Delivery(Message):
    """A delivery receipt."""


class Open(Message):
    """``machine``: made by a privacy proxy, not by the person (SPEC §7.1)."""

    def __init__(
        self,
        event_id: str,
        org_id: str,
        contact_id: str,
        occurred_at: datetime,
        channel: str,
        message_id: str,
        machine: bool,
    ) -> None:
        super().__init__(event_id, org_id, contact_id, occurred_at, channel, message_id)
        self.machine = machine

    def fields(self) -> tuple[object, ...]:
        return (*super().fields(), self.machine)


class Click(Message):
    """``bot``: made by a link scanner, as the provider says (SPEC §7.1)."""

    def __init__(
        self,
        event_id: str,
        org_id: str,
        contact_id: str,
        occurred_at: datetime,
        channel: str,
        message_id: str,
        bot: bool,
    ) -> None:
        super().__init__(event_id, org_id, contact_id, occurred_at, channel, message_id)
        self.bot = bot

    def fields(self) -> tuple[object, ...]:
        return (*super().fields(), self.bot)


class Reply(Message):
    """A reply from the contact."""


class Bounce(Message):
    """Only ``kind`` is counted (hard_bounced)."""

    def __init__(
        self,
        event_id: str,
        org_id: str,
        contact_id: str,
        occurred_at: datetime,
        channel: str,
        message_id: str,
        kind: str,
    ) -> None:
        super().__init__(event_id, org_id, contact_id, occurred_at, channel, message_id)
        self.kind = kind

    def fields(self) -> tuple[object, ...]:
        return (*super().fields(), self.kind)


class Complaint(Message):
    """A spam complaint: it also unsubscribes the channel (SPEC §7.2)."""


class Unsubscribe(Engagement):
    """An unsubscribe from one channel."""


Interaction = Delivery | Open | Click | Reply | Bounce | Complaint
LightEvent = Dispatch | Delivery | Open | Click | Reply | Bounce | Complaint | Unsubscribe


def lighten(event: EngagementEvent) -> LightEvent:
    """The counting core's form of a validated engagement model (tests, the simulator)."""
    base = (event.event_id, event.org_id, event.contact_id, event.occurred_at, event.channel)
    if isinstance(event, UnsubscribeEvent):
        return Unsubscribe(*base)
    if isinstance(event, DispatchEvent):
        return Dispatch(*base, event.message_id, event.dispatch_kind)
    if isinstance(event, DeliveryEvent):
        return Delivery(*base, event.message_id)
    if isinstance(event, OpenEvent):
        return Open(*base, event.message_id, event.machine)
    if isinstance(event, ClickEvent):
        return Click(*base, event.message_id, event.bot)
    if isinstance(event, ReplyEvent):
        return Reply(*base, event.message_id)
    if isinstance(event, BounceEvent):
        return Bounce(*base, event.message_id, event.kind)
    return Complaint(*base, event.message_id)
