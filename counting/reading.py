"""Raw record -> the event the counting core applies, checked exactly as the contract's models
check it, at a fraction of their cost.

`models.events.parse_record` (pydantic) is the contract: what a valid event is, and the reason
and code of every refusal. The worker reads ~25,000 events a second, and building a model costs
~7.5 µs of the ~40 µs an event may cost in all. So `read_record` first tries a *fast path*, a
hand-written check of each field of the eight engagement topics, compiled with the core, that
builds the light event (`counting.events`) directly. The fast path is a strict subset of the
model's rules: it accepts a record only when every field is plainly valid (the right JSON type,
a length within the limit, an id without a forbidden character, a timestamp in the one RFC 3339
layout producers use, `YYYY-MM-DDTHH:MM:SS[.ffffff](Z|±HH:MM)`). On any doubt it does not
decide: the record goes to `parse_record`, whose verdict stands, refusal reason included. So a
record refused by the models is refused here with the same words, and one accepted by them gives
the same values (tests/unit/test_reading.py checks both against the models, with hypothesis).

The contact topic always takes the models' path (~1 % of the traffic; see `counting.events`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from counting import event_codec as ec
from counting.events import (
    Bounce,
    Click,
    Complaint,
    Delivery,
    Dispatch,
    LightEvent,
    Open,
    Reply,
    Unsubscribe,
    lighten,
)
from models.events import (
    BOUNCE_KINDS,
    CONTACT_MODELS,
    DISPATCH_KINDS,
    REASON_MAX,
    URL_MAX,
    USER_AGENT_MAX,
    ContactDelete,
    ContactListAdded,
    ContactListRemoved,
    ContactSubscribe,
    ContactUpsert,
    ParseConfig,
    parse_limits,
    parse_record,
)
from models.identifiers import (
    CAMPAIGN_ID_MAX,
    CONTACT_ID_MAX,
    EVENT_ID_MAX,
    MESSAGE_ID_MAX,
    ORG_ID_MAX,
)

ContactModel = (
    ContactUpsert | ContactDelete | ContactListAdded | ContactListRemoved | ContactSubscribe
)
CountedEvent = LightEvent | ContactModel

# Topic -> a small number, so the per-topic fields are an integer comparison away (the numbers
# are those `counting.event_codec` writes).
_DISPATCH, _DELIVERY, _OPEN, _CLICK, _REPLY = ec.DISPATCH, ec.DELIVERY, ec.OPEN, ec.CLICK, ec.REPLY
_BOUNCE, _COMPLAINT, _UNSUBSCRIBE = ec.BOUNCE, ec.COMPLAINT, ec.UNSUBSCRIBE
_TOPIC_CODES: dict[str, int] = {
    "dispatch": _DISPATCH,
    "delivery": _DELIVERY,
    "open": _OPEN,
    "click": _CLICK,
    "reply": _REPLY,
    "bounce": _BOUNCE,
    "complaint": _COMPLAINT,
    "unsubscribe": _UNSUBSCRIBE,
}


def _id_length(value: object, most: int) -> bool:
    """True when `value` is text of an id's length (1..most characters); the characters are
    checked with the record's other ids, in one call (`_printable`)."""
    return isinstance(value, str) and 0 < len(value) <= most


def _printable(ids: str) -> bool:
    """True when the (joined) ids hold no character an id may not hold.

    `str.isprintable` is false for every forbidden character (C0, DEL, C1, U+2028, U+2029 and
    surrogates are all in categories it refuses), so true proves them absent in one C call for
    all ids; a method call costs as much as the check, hence one call for the joined ids. It is
    also false for some allowed characters (a no-break space, say): those records take the
    models' path, which accepts them."""
    return ids.isprintable()


def _optional_id(value: object, most: int) -> bool:
    return value is None or (
        isinstance(value, str) and _id_length(value, most) and _printable(value)
    )


def _optional_text(value: object, most: int) -> bool:
    return value is None or (isinstance(value, str) and len(value) <= most)


def plain_timestamp(value: object) -> datetime | None:
    """The UTC datetime of an RFC 3339 text in the common layout, or None to let the model
    decide (another layout, a date that does not exist, anything unusual).

    The layout and the offset's minutes (which `fromisoformat` does not range-check) are checked
    here, the digits and the other ranges by `datetime.fromisoformat`; pydantic reads every
    form accepted here to the same instant (tests/unit/test_reading.py)."""
    if not isinstance(value, str):
        return None
    n = len(value)
    if (
        n < 20
        or value[4] != "-"
        or value[7] != "-"
        or value[10] != "T"
        or value[13] != ":"
        or value[16] != ":"
    ):
        return None
    if value[n - 1] == "Z":
        end = n - 1
    elif (
        n >= 25
        and (value[n - 6] == "+" or value[n - 6] == "-")
        and value[n - 3] == ":"
        and "0" <= value[n - 2] <= "5"  # fromisoformat takes offset minutes 60-99; RFC 3339 not
    ):
        end = n - 6
    else:
        return None
    if end != 19 and (value[19] != "." or not 2 <= end - 19 <= 7):
        return None
    try:
        parsed = datetime.fromisoformat(value)
        # "Z" and "+00:00" come back with the `UTC` singleton already: nothing to convert.
        # In UTC an instant near year 1 or 9999 may not exist (OverflowError): the model's.
        return parsed if parsed.tzinfo is UTC else parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def read_plain(topic: str, data: dict[str, Any], channels: tuple[str, ...]) -> LightEvent | None:
    """The light event when every field of a decoded engagement record is plainly valid; None
    to let the model decide (and for the contact topic, which the fast path does not read)."""
    code = _TOPIC_CODES.get(topic)
    return None if code is None else _fast(code, data, channels)


def _fast(code: int, data: dict[str, Any], channels: tuple[str, ...]) -> LightEvent | None:
    event_id = data.get("event_id")
    org_id = data.get("org_id")
    contact_id = data.get("contact_id")
    channel = data.get("channel")
    if not (
        _id_length(event_id, EVENT_ID_MAX)
        and _id_length(org_id, ORG_ID_MAX)
        and _id_length(contact_id, CONTACT_ID_MAX)
        and isinstance(channel, str)
        and channel in channels
    ):
        return None
    assert isinstance(event_id, str) and isinstance(org_id, str) and isinstance(contact_id, str)
    occurred_at = plain_timestamp(data.get("occurred_at"))
    if occurred_at is None:
        return None
    if code == _UNSUBSCRIBE:
        if not _printable(event_id + org_id + contact_id):
            return None
        return Unsubscribe(event_id, org_id, contact_id, occurred_at, channel)
    message_id = data.get("message_id")
    if not _id_length(message_id, MESSAGE_ID_MAX):
        return None
    assert isinstance(message_id, str)
    if not _printable(event_id + org_id + contact_id + message_id):
        return None
    if code == _DISPATCH:
        kind = data.get("dispatch_kind")
        if not isinstance(kind, str) or kind not in DISPATCH_KINDS:
            return None
        if not _optional_id(data.get("campaign_id"), CAMPAIGN_ID_MAX):
            return None
        return Dispatch(event_id, org_id, contact_id, occurred_at, channel, message_id, kind)
    if code == _DELIVERY:
        return Delivery(event_id, org_id, contact_id, occurred_at, channel, message_id)
    if code == _OPEN:
        machine = data.get("machine", False)
        if not isinstance(machine, bool) or not _optional_text(
            data.get("user_agent"), USER_AGENT_MAX
        ):
            return None
        return Open(event_id, org_id, contact_id, occurred_at, channel, message_id, machine)
    if code == _CLICK:
        bot = data.get("bot", False)
        if (
            not isinstance(bot, bool)
            or not _optional_text(data.get("user_agent"), USER_AGENT_MAX)
            or not _optional_text(data.get("url"), URL_MAX)
        ):
            return None
        return Click(event_id, org_id, contact_id, occurred_at, channel, message_id, bot)
    if code == _REPLY:
        return Reply(event_id, org_id, contact_id, occurred_at, channel, message_id)
    if code == _BOUNCE:
        kind = data.get("kind")
        if not isinstance(kind, str) or kind not in BOUNCE_KINDS:
            return None
        if not _optional_text(data.get("reason"), REASON_MAX):
            return None
        return Bounce(event_id, org_id, contact_id, occurred_at, channel, message_id, kind)
    return Complaint(event_id, org_id, contact_id, occurred_at, channel, message_id)


_latest: list[tuple[datetime, ParseConfig, datetime]] = []


def _latest_for(now: datetime, cfg: ParseConfig) -> datetime:
    """The latest event time accepted at `now` (`parse_limits(...).latest`), kept here for the
    batch: the models' module is interpreted, and a call into it per event costs more than the
    comparison it serves."""
    if _latest:
        last_now, last_cfg, latest = _latest[0]
        if last_now is now and last_cfg is cfg:
            return latest
    latest = parse_limits(cfg, now).latest
    _latest[:] = [(now, cfg, latest)]
    return latest


def read_record(topic: str, raw: bytes, now: datetime, cfg: ParseConfig) -> CountedEvent:
    """Decode and check one record of an UNPREFIXED topic, or raise ``RecordRejected``
    (`models.events.parse_record`'s reasons and codes, word for word)."""
    code = _TOPIC_CODES.get(topic)
    if code is not None and len(raw) <= cfg.max_record_bytes:
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            data = None
        if isinstance(data, dict):
            fast = _fast(code, data, cfg.channels)
            if fast is not None and fast.occurred_at <= _latest_for(now, cfg):
                return fast
    event = parse_record(topic, raw, now, cfg)
    if isinstance(event, CONTACT_MODELS):
        return event
    return lighten(event)


def validated(topic: str, data: dict[str, Any], channels: tuple[str, ...]) -> bytes | None:
    """For the ingest: the encoded event (`counting.event_codec`) of a decoded record of an
    UNPREFIXED engagement topic that the fast path accepts, else None (the worker then reads
    the record itself). The future-time limit is not checked here: it is the worker's clock's."""
    code = _TOPIC_CODES.get(topic)
    if code is None:
        return None
    fast = _fast(code, data, channels)
    if fast is None:
        return None
    occurred_at = data["occurred_at"]
    assert isinstance(occurred_at, str)  # the fast path read it
    try:
        return ec.encode(code, fast, occurred_at)
    except UnicodeEncodeError:  # a lone surrogate: the models decide
        return None


def read_validated(data: bytes, now: datetime, cfg: ParseConfig) -> LightEvent | None:
    """The event the ingest validated (`validated`), or None when the worker must read the
    record itself: it is later than the future-time limit at `now` (the models give the
    refusal's words), or the bytes are damaged."""
    try:
        event = ec.decode(data)
    except ec.EventBytesError:
        return None
    return event if event.occurred_at <= _latest_for(now, cfg) else None
