"""Input records (SPEC §2) and the one function that turns raw Kafka bytes into them.

Every way a record can be unusable maps to a ``RecordRejected`` with a stable ``code`` (for
metrics and alerting) and a ``reason`` a person can act on, because the dead-letter topic is
read by people, not machines.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, ClassVar, Literal, Protocol, get_args

import orjson
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)
from pydantic_core import PydanticCustomError

from models.identifiers import (
    CampaignId,
    ContactId,
    EventId,
    ListId,
    MessageId,
    OrgId,
    id_problem,
)
from models.origin import ORIGIN_TYPES, Origin

DEFAULT_CHANNELS: tuple[str, ...] = ("sms", "email", "whatsapp")

REJECTION_CODES = (
    "not_json",
    "invalid_field",
    "missing_field",
    "unknown_channel",
    "bad_timestamp",
    "future_timestamp",
    "oversize",
    "unknown_topic",
)


class RecordRejected(Exception):
    """A record that cannot be used; it goes to the dead letters, it never stops an agent."""

    def __init__(self, reason: str, code: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code

    def __repr__(self) -> str:
        return f"RecordRejected(reason={self.reason!r}, code={self.code!r})"


class ParseConfig(Protocol):
    """What parsing needs from the configuration; ``counting.CountingConfig`` satisfies it.

    A protocol keeps ``models`` free of any import from ``counting``.
    """

    @property
    def channels(self) -> tuple[str, ...]: ...

    @property
    def max_record_bytes(self) -> int: ...

    @property
    def future_tolerance_seconds(self) -> int: ...


def _timestamp(value: Any, handler: ValidatorFunctionWrapHandler) -> datetime:
    """An RFC 3339 text with an offset, normalised to stdlib UTC: one Python call per field
    (a before and an after validator cost two, on every event of the worker).

    pydantic would also take 1700000000 or "1700000000" as a datetime; the contract says
    RFC 3339 with an offset, and a unix number is most likely a producer bug. UTC once here:
    arithmetic on stdlib UTC datetimes is several times cheaper than on pydantic's offset
    objects, and the counting core does it for every event."""
    if not isinstance(value, datetime) and (
        not isinstance(value, str) or len(value) < 19 or value[4] != "-" or value[10] not in "Tt "
    ):
        raise PydanticCustomError("bad_timestamp", "not an RFC 3339 timestamp")
    parsed: datetime = handler(value)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        # "0001-01-01T00:00:00+01:00" is a valid text for an instant before year 1 in UTC,
        # which a datetime cannot hold: refused like any unusable timestamp, not a crash.
        raise PydanticCustomError("bad_timestamp", "not an instant a datetime can hold") from None


def _check_channel(value: str, info: ValidationInfo) -> str:
    # The channel set is configuration, so it arrives through the validation context;
    # without a context (e.g. a direct model_validate in a test) the defaults apply.
    context = info.context
    channels = context.get("channels", DEFAULT_CHANNELS) if context else DEFAULT_CHANNELS
    if value not in channels:
        raise PydanticCustomError(
            "unknown_channel",
            "'{value}' is not one of {choices}",
            {"value": value, "choices": ", ".join(channels)},
        )
    return value


Timestamp = Annotated[AwareDatetime, WrapValidator(_timestamp)]
Channel = Annotated[str, AfterValidator(_check_channel)]
Phone = Annotated[str, Field(pattern=r"^\+[1-9][0-9]{1,14}$")]
Email = Annotated[str, Field(max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]
Name = Annotated[str, Field(min_length=1, max_length=256)]

# Lengths of the free-text fields, here once: the models and the counting core's reader
# (`counting.reading`, which checks a record exactly as these models do) both use them.
URL_MAX = 4096
USER_AGENT_MAX = 1024
REASON_MAX = 1024


class _Record(BaseModel):
    model_config = ConfigDict(extra="ignore")

    event_id: EventId
    org_id: OrgId
    contact_id: ContactId
    occurred_at: Timestamp


class _EngagementRecord(_Record):
    topic: ClassVar[str]
    channel: Channel


class _MessageRecord(_EngagementRecord):
    message_id: MessageId


class DispatchEvent(_MessageRecord):
    topic: ClassVar[str] = "dispatch"
    dispatch_kind: Literal["single", "automated"]
    campaign_id: CampaignId | None = None


class DeliveryEvent(_MessageRecord):
    topic: ClassVar[str] = "delivery"


UserAgent = Annotated[str, Field(max_length=USER_AGENT_MAX)]


class OpenEvent(_MessageRecord):
    """An open with machine true was made by a privacy proxy, not by the person (SPEC §7.1).
    It must be a JSON boolean: the text "false" would be a producer bug read as true."""

    topic: ClassVar[str] = "open"
    machine: StrictBool = False
    user_agent: UserAgent | None = None


class ClickEvent(_MessageRecord):
    """A click with bot true was made by a link scanner, as the provider says (SPEC §7.1); an
    unflagged click is a bot's too when it is dated less than EM_BOT_CLICK_SECONDS after the
    delivery."""

    topic: ClassVar[str] = "click"
    url: Annotated[str, Field(max_length=URL_MAX)] | None = None
    bot: StrictBool = False
    user_agent: UserAgent | None = None


class ReplyEvent(_MessageRecord):
    topic: ClassVar[str] = "reply"


class BounceEvent(_MessageRecord):
    """Only ``kind`` is counted (hard_bounced); ``reason`` is kept for people."""

    topic: ClassVar[str] = "bounce"
    kind: Literal["hard", "soft"]
    reason: Annotated[str, Field(max_length=REASON_MAX)] | None = None


class ComplaintEvent(_MessageRecord):
    """A complaint also proves the message was delivered: nobody reports a message they
    never received."""

    topic: ClassVar[str] = "complaint"


class UnsubscribeEvent(_EngagementRecord):
    topic: ClassVar[str] = "unsubscribe"


class ContactUpsert(_Record):
    """Only the fields present in the record are written; an explicit null clears a field."""

    type: Literal["upsert"]
    name: Name | None = None
    phone: Phone | None = None
    email: Email | None = None
    created_at: Timestamp | None = None
    origin: Origin | None = None


class ContactDelete(_Record):
    type: Literal["delete"]


class ContactListAdded(_Record):
    type: Literal["list_added"]
    list_id: ListId
    list_name: Name | None = None


class ContactListRemoved(_Record):
    type: Literal["list_removed"]
    list_id: ListId


class ContactSubscribe(_Record):
    type: Literal["subscribe"]
    channel: Channel


ContactEvent = Annotated[
    ContactUpsert | ContactDelete | ContactListAdded | ContactListRemoved | ContactSubscribe,
    Field(discriminator="type"),
]
CONTACT_TYPES = ("upsert", "delete", "list_added", "list_removed", "subscribe")

# Events about one message after its dispatch: they wait for it when they arrive first.
InteractionEvent = (
    DeliveryEvent | OpenEvent | ClickEvent | ReplyEvent | BounceEvent | ComplaintEvent
)
# The eight engagement topics' events (the counting core reads them light: counting.events).
EngagementEvent = DispatchEvent | InteractionEvent | UnsubscribeEvent
Event = (
    DispatchEvent
    | DeliveryEvent
    | OpenEvent
    | ClickEvent
    | ReplyEvent
    | BounceEvent
    | ComplaintEvent
    | UnsubscribeEvent
    | ContactUpsert
    | ContactDelete
    | ContactListAdded
    | ContactListRemoved
    | ContactSubscribe
)

_CONTACT_ADAPTER: TypeAdapter[
    ContactUpsert | ContactDelete | ContactListAdded | ContactListRemoved | ContactSubscribe
] = TypeAdapter(ContactEvent)

ENGAGEMENT_MODELS: dict[str, type[_EngagementRecord]] = {
    m.topic: m
    for m in (
        DispatchEvent,
        DeliveryEvent,
        OpenEvent,
        ClickEvent,
        ReplyEvent,
        BounceEvent,
        ComplaintEvent,
        UnsubscribeEvent,
    )
}
TOPICS: tuple[str, ...] = (*ENGAGEMENT_MODELS, "contact")
CONTACT_MODELS = (
    ContactUpsert,
    ContactDelete,
    ContactListAdded,
    ContactListRemoved,
    ContactSubscribe,
)
# The allowed values of the literal fields, read from the models (one source).
DISPATCH_KINDS: tuple[str, ...] = get_args(DispatchEvent.model_fields["dispatch_kind"].annotation)
BOUNCE_KINDS: tuple[str, ...] = get_args(BounceEvent.model_fields["kind"].annotation)


def _shown(value: Any) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value, default=str).decode()
    return text if len(text) <= 80 else text[:77] + "..."


def _field_path(loc: tuple[int | str, ...], contact: bool) -> str:
    parts = list(loc)
    # Discriminated unions put the tag in the location; people think in field names.
    if contact and parts and parts[0] in CONTACT_TYPES:
        parts = parts[1:]
    cleaned: list[str] = []
    skip_next = False
    for i, part in enumerate(parts):
        if skip_next:
            skip_next = False
            continue
        cleaned.append(str(part))
        if part == "origin" and i + 1 < len(parts) and parts[i + 1] in ORIGIN_TYPES:
            skip_next = True
    return ".".join(cleaned)


_TIMESTAMP_ERRORS = {
    "bad_timestamp",
    "timezone_aware",
    "datetime_parsing",
    "datetime_from_date_parsing",
    "datetime_type",
    "datetime_object_invalid",
}


_PATTERN_DETAILS = {
    "phone": "not an E.164 phone number (+ and up to 15 digits)",
    "email": "not an e-mail address",
}


def _rejection(error: ValidationError, contact: bool) -> RecordRejected:
    errors = error.errors(include_url=False)
    # A missing field is the most useful thing to name when several things are wrong.
    first = min(errors, key=lambda e: e["type"] not in ("missing", "union_tag_not_found"))
    kind = first["type"]
    path = _field_path(first["loc"], contact)
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    if kind == "missing":
        return RecordRejected(f"missing field {path}{more}", "missing_field")
    if kind == "union_tag_not_found":
        field = f"{path}.type" if path else "type"
        return RecordRejected(f"missing field {field}{more}", "missing_field")
    if kind == "unknown_channel":
        return RecordRejected(f"{path}: {first['msg']}{more}", "unknown_channel")
    problem = id_problem(first)  # an id: name the character, not the value
    if problem is not None:
        return RecordRejected(f"{path}: {problem}{more}", "invalid_field")
    if kind == "string_unicode":
        return RecordRejected(f"{path}: contains a lone surrogate{more}", "invalid_field")
    if kind in _TIMESTAMP_ERRORS:
        detail = "has no UTC offset" if kind == "timezone_aware" else "not an RFC 3339 timestamp"
        shown = _shown(first.get("input"))
        return RecordRejected(f"{path}: {detail} ({shown}){more}", "bad_timestamp")
    if kind == "union_tag_invalid":
        field = f"{path}.type" if path else "type"
        ctx = first.get("ctx", {})
        return RecordRejected(
            f"{field}: {ctx.get('tag')!r} is not one of {ctx.get('expected_tags')}{more}",
            "invalid_field",
        )
    shown = _shown(first.get("input"))
    message = first["msg"][0].lower() + first["msg"][1:]
    if kind == "string_pattern_mismatch":
        message = _PATTERN_DETAILS.get(path, message)
    return RecordRejected(f"{path}: {message} ({shown}){more}", "invalid_field")


def _describe_tolerance(seconds: int) -> str:
    if seconds % 60 == 0:
        minutes = seconds // 60
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    return f"{seconds} seconds"


class _Limits:
    """What `parse_record` checks every event against, for one (configuration, `now`): a worker
    parses a whole batch with the same two, so this is built once per batch, not per event."""

    __slots__ = ("cfg", "context", "latest", "now")

    def __init__(self, cfg: ParseConfig, now: datetime) -> None:
        self.cfg = cfg
        self.now = now
        self.context = {"channels": cfg.channels}
        self.latest = now + timedelta(seconds=cfg.future_tolerance_seconds)


_limits: list[_Limits] = []


def parse_limits(cfg: ParseConfig, now: datetime) -> _Limits:
    """The limits for one (configuration, `now`), made once per batch (`counting.reading`
    shares them)."""
    if _limits:
        last = _limits[0]
        if last.now is now and last.cfg is cfg:
            return last
    made = _Limits(cfg, now)
    _limits[:] = [made]
    return made


def parse_record(topic: str, raw: bytes, now: datetime, cfg: ParseConfig) -> Event:
    """Decode and validate one record of an UNPREFIXED topic, or raise ``RecordRejected``.

    ``now`` is the processing time used for the future-timestamp guard: a clock far ahead
    would otherwise pin a message in the window for months.
    """
    if len(raw) > cfg.max_record_bytes:
        raise RecordRejected(f"oversize: {len(raw)} bytes > {cfg.max_record_bytes}", "oversize")
    model = ENGAGEMENT_MODELS.get(topic)
    if model is None and topic != "contact":
        raise RecordRejected(
            f"unknown topic {topic!r} (expected one of {', '.join(TOPICS)})", "unknown_topic"
        )
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise RecordRejected(f"not JSON: {exc}", "not_json") from None
    if not isinstance(data, dict):
        raise RecordRejected(f"not JSON: expected an object, got {type(data).__name__}", "not_json")
    limits = parse_limits(cfg, now)
    event: Event
    try:
        if model is not None:
            # The model's own validator (what `model_validate` calls, minus a Python frame).
            event = model.__pydantic_validator__.validate_python(data, context=limits.context)
        else:
            event = _CONTACT_ADAPTER.validate_python(data, context=limits.context)
    except ValidationError as exc:
        raise _rejection(exc, contact=model is None) from None
    if event.occurred_at > limits.latest:
        raise RecordRejected(
            f"occurred_at: more than {_describe_tolerance(cfg.future_tolerance_seconds)} "
            f"in the future ({data.get('occurred_at')})",
            "future_timestamp",
        )
    return event
