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

import struct
from datetime import UTC, datetime, timedelta

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


# ------------------------------------------------------------------------------ wire form
# An event the ingest has read and checked travels to the worker in this form beside its raw
# record (`streams.envelope`, entries of kind KIND_EVENT), so the worker does not parse and
# check its JSON a second time (~4 µs of the ~13 µs an event cost the worker; BENCHMARKS.md,
# session 17). Versioned, big-endian:
#
#     u8 version (1), u8 type (_WIRE_TYPES), u8 flag (Open.machine / Click.bot), i64 occurred_at
#     (µs since the epoch, UTC), six u16 lengths, then UTF-8: event_id, org_id, contact_id,
#     channel, message_id ("" for an unsubscribe), kind (Dispatch.dispatch_kind / Bounce.kind,
#     else "")
WIRE_VERSION = 1
_WIRE_HEAD = struct.Struct(">BBBqHHHHHH")
_WIRE_TYPES: tuple[type, ...] = (
    Dispatch,
    Delivery,
    Open,
    Click,
    Reply,
    Bounce,
    Complaint,
    Unsubscribe,
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class WireError(ValueError):
    """Bytes that are not an event in a wire form this release reads."""


def pack_event(event: LightEvent) -> bytes:
    """The wire form of a checked event (ids were checked printable: they encode as UTF-8)."""
    kind = ""
    flag = 0
    message_id = ""
    if isinstance(event, Message):
        message_id = event.message_id
    if isinstance(event, Dispatch):
        kind = event.dispatch_kind
    elif isinstance(event, Bounce):
        kind = event.kind
    elif isinstance(event, Open):
        flag = int(event.machine)
    elif isinstance(event, Click):
        flag = int(event.bot)
    delta = event.occurred_at - _EPOCH
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    parts = (
        event.event_id.encode(),
        event.org_id.encode(),
        event.contact_id.encode(),
        event.channel.encode(),
        message_id.encode(),
        kind.encode(),
    )
    head = _WIRE_HEAD.pack(
        WIRE_VERSION,
        _WIRE_TYPES.index(type(event)),
        flag,
        micros,
        len(parts[0]),
        len(parts[1]),
        len(parts[2]),
        len(parts[3]),
        len(parts[4]),
        len(parts[5]),
    )
    return head + b"".join(parts)


def unpack_event(data: bytes) -> LightEvent:
    """The event `pack_event` packed, equal to it field for field; `WireError` otherwise."""
    try:
        version, code, flag, micros, n0, n1, n2, n3, n4, n5 = _WIRE_HEAD.unpack_from(data)
    except struct.error as exc:
        raise WireError(f"not a packed event: {exc}") from None
    if version != WIRE_VERSION or code >= len(_WIRE_TYPES):
        raise WireError(f"packed event of version {version}, type {code}: not readable here")
    at = _WIRE_HEAD.size
    if at + n0 + n1 + n2 + n3 + n4 + n5 != len(data):
        raise WireError("packed event of the wrong length")
    try:
        event_id = data[at : at + n0].decode()
        at += n0
        org_id = data[at : at + n1].decode()
        at += n1
        contact_id = data[at : at + n2].decode()
        at += n2
        channel = data[at : at + n3].decode()
        at += n3
        message_id = data[at : at + n4].decode()
        at += n4
        kind = data[at : at + n5].decode()
    except UnicodeDecodeError as exc:
        raise WireError(f"packed event with an id that is not UTF-8: {exc}") from None
    occurred_at = _EPOCH + timedelta(microseconds=micros)
    if code == 0:
        return Dispatch(event_id, org_id, contact_id, occurred_at, channel, message_id, kind)
    if code == 1:
        return Delivery(event_id, org_id, contact_id, occurred_at, channel, message_id)
    if code == 2:
        return Open(event_id, org_id, contact_id, occurred_at, channel, message_id, flag != 0)
    if code == 3:
        return Click(event_id, org_id, contact_id, occurred_at, channel, message_id, flag != 0)
    if code == 4:
        return Reply(event_id, org_id, contact_id, occurred_at, channel, message_id)
    if code == 5:
        return Bounce(event_id, org_id, contact_id, occurred_at, channel, message_id, kind)
    if code == 6:
        return Complaint(event_id, org_id, contact_id, occurred_at, channel, message_id)
    return Unsubscribe(event_id, org_id, contact_id, occurred_at, channel)
