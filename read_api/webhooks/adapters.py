"""Each provider's webhook payload, mapped to events of our input topics (SPEC §7.5).

Pure functions: raw request in, a list of outcomes out, one per provider event:

* ``Mapped`` — an event for one of our input topics, in the shape of ``models.events`` (the
  worker validates it like any producer's record);
* ``Unmapped`` — the provider's own event, which goes to the dead letters with a reason (no
  ``em_contact_id``, an unknown status): a 4xx would only make the provider retry forever;
* ``Ignored`` — a status with no counterpart (processed, queued, sent, deferred…): accepted.

WhatsApp replies name our message only by Meta's message id (``context.id``); ``Remember``
and ``NeedsMessage`` let the route resolve them against the ids its status events carried.

Event ids are the provider's own (``sg_event_id``, Zenvia's event ``id``) or, where it has
none, derived from the provider's message id and status, so a provider's retry of the same
event is a duplicate the worker counts once. docs/webhooks.md cites what each mapping rests on.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

import orjson

from models.identifiers import EVENT_ID_MAX

# `em-code` of the dead letters made here, beside the worker's (models.events.REJECTION_CODES,
# whose `unknown_channel` is used here too).
WEBHOOK_REJECTION_CODES = ("missing_ids", "unknown_status", "invalid_payload", "unknown_message")

CONTACT_ARG = "em_contact_id"
MESSAGE_ARG = "em_message_id"


@dataclass(frozen=True, slots=True)
class Mapped:
    topic: str  # short name of an input topic
    value: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Unmapped:
    reason: str
    code: str  # one of WEBHOOK_REJECTION_CODES, or "unknown_channel"
    payload: bytes  # the provider's own event, as JSON (or the raw body when it had no events)


@dataclass(frozen=True, slots=True)
class Ignored:
    status: str


@dataclass(frozen=True, slots=True)
class Remember:
    """A WhatsApp message id seen with our ids: a later reply may name it."""

    provider_message_id: str
    contact_id: str
    message_id: str


@dataclass(frozen=True, slots=True)
class NeedsMessage:
    """A WhatsApp reply: ``value`` lacks ``contact_id`` and ``message_id`` until the message it
    answers (``provider_message_id``) is resolved."""

    provider_message_id: str
    value: dict[str, Any]
    payload: bytes


Outcome = Mapped | Unmapped | Ignored | Remember | NeedsMessage


class PayloadError(ValueError):
    """The body is not the provider's shape at all (not JSON, not a list…): a 400, since no
    retry of the same body can ever succeed and there is no event to dead-letter."""


def event_id(provider: str, *parts: str) -> str:
    """``provider:part:part``; hashed when longer than an event id may be."""
    text = ":".join((provider, *parts))
    if len(text) <= EVENT_ID_MAX:
        return text
    return f"{provider}:sha256:{hashlib.sha256(text.encode()).hexdigest()}"


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat()


def _ids(args: Mapping[str, Any]) -> tuple[str, str] | None:
    contact, message = args.get(CONTACT_ARG), args.get(MESSAGE_ARG)
    if isinstance(contact, str) and isinstance(message, str) and contact and message:
        return contact, message
    return None


def ids_from_query(text: str | None) -> tuple[str, str] | None:
    """``em_contact_id=…&em_message_id=…`` (URL-encoded), as WhatsApp's
    ``biz_opaque_callback_data`` and Zenvia's ``externalId`` carry them."""
    if not text:
        return None
    parsed = parse_qs(text, keep_blank_values=False)
    return _ids({k: v[0] for k, v in parsed.items() if v})


def _missing(provider: str, where: str, payload: bytes) -> Unmapped:
    return Unmapped(
        f"{provider} event without {CONTACT_ARG} and {MESSAGE_ARG} in {where}: the sending "
        "pipeline must set them for the monitor to count the event",
        "missing_ids",
        payload,
    )


def _base(
    org_id: str, contact: str, channel: str, message: str, eid: str, at: str
) -> dict[str, Any]:
    return {
        "event_id": eid,
        "org_id": org_id,
        "contact_id": contact,
        "channel": channel,
        "message_id": message,
        "occurred_at": at,
    }


# --- SendGrid: a JSON array of events, custom args as top-level keys -----------------------

# No counterpart: accepted (processed), retried by SendGrid (deferred), an opt-out or back in
# of one suppression group (the monitor keeps one status per channel, and leaving a newsletter
# group is not opting out of every e-mail), account notices.
_SENDGRID_IGNORED = frozenset(
    {"processed", "deferred", "group_unsubscribe", "group_resubscribe", "account_status_change"}
)


def _unix_seconds(value: Any) -> float | None:
    """SendGrid's `timestamp` is documented as a string but sent as a number: take both."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and value.strip().isdigit():
        return float(value.strip())
    return None


def sendgrid(org_id: str, body: bytes) -> list[Outcome]:
    try:
        events = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise PayloadError(f"not JSON: {exc}") from None
    if not isinstance(events, list):
        raise PayloadError("SendGrid posts a JSON array of events")
    out: list[Outcome] = []
    for event in events:
        raw = orjson.dumps(event)
        if not isinstance(event, dict):
            out.append(Unmapped("an event is not a JSON object", "invalid_payload", raw))
            continue
        kind = str(event.get("event", "")).lower()  # "Processed" appears in SendGrid's examples
        if kind in _SENDGRID_IGNORED:
            out.append(Ignored(kind))
            continue
        ids = _ids(event)
        if ids is None:
            out.append(_missing("SendGrid", "its custom args", raw))
            continue
        stamp, sg_id = _unix_seconds(event.get("timestamp")), event.get("sg_event_id")
        if stamp is None or not isinstance(sg_id, str) or not sg_id:
            out.append(Unmapped("no timestamp or sg_event_id", "invalid_payload", raw))
            continue
        value = _base(org_id, ids[0], "email", ids[1], event_id("sendgrid", sg_id), _iso(stamp))
        match kind:
            case "delivered":
                out.append(Mapped("delivery", value))
            case "open":
                if event.get("sg_machine_open") is True:
                    value["machine"] = True
                _user_agent(value, event.get("useragent"))
                out.append(Mapped("open", value))
            case "click":
                url = event.get("url")
                if isinstance(url, str) and url:
                    value["url"] = url[:4096]
                _user_agent(value, event.get("useragent"))
                out.append(Mapped("click", value))
            case "bounce" | "dropped":
                # `type` "blocked" is a temporary refusal; a drop means SendGrid will not try.
                soft = kind == "bounce" and event.get("type") == "blocked"
                value["kind"] = "soft" if soft else "hard"
                _reason(value, event.get("reason"))
                out.append(Mapped("bounce", value))
            case "spamreport":
                out.append(Mapped("complaint", value))
            case "unsubscribe":  # "Opt Out of All Emails"
                del value["message_id"]
                out.append(Mapped("unsubscribe", value))
            case _:
                out.append(Unmapped(f"unknown SendGrid event {kind!r}", "unknown_status", raw))
    return out


def _user_agent(value: dict[str, Any], agent: Any) -> None:
    if isinstance(agent, str) and agent:
        value["user_agent"] = agent[:1024]


def _reason(value: dict[str, Any], reason: Any) -> None:
    if isinstance(reason, str) and reason:
        value["reason"] = reason[:1024]


# --- Twilio: form-encoded status callbacks, our ids in the callback URL's query -----------

# Error codes that mean the number will never work (Twilio's error dictionary): unknown or
# unreachable destination handset, landline, invalid number, not a mobile number, blocked.
_TWILIO_HARD_ERRORS = frozenset({"21211", "21612", "21614", "30005", "30006", "63003", "63024"})
_TWILIO_IGNORED = frozenset(
    {"accepted", "scheduled", "queued", "sending", "sent", "canceled", "receiving", "received"}
)


def twilio(
    org_id: str, form: list[tuple[str, str]], query: Mapping[str, str], now_s: float
) -> list[Outcome]:
    """One status per request. Twilio's status callbacks carry no event time: the time the
    request arrived is used (Twilio posts them as the status changes)."""
    fields = dict(form)
    raw = orjson.dumps(fields)
    status, sid = fields.get("MessageStatus") or fields.get("SmsStatus"), fields.get("MessageSid")
    if not status or not sid:
        return [Unmapped("no MessageStatus or MessageSid", "invalid_payload", raw)]
    if status in _TWILIO_IGNORED or status == "partially_delivered":
        return [Ignored(status)]
    ids = _ids(query)
    if ids is None:
        return [_missing("Twilio", "the status callback URL's query", raw)]
    whatsapp = (fields.get("To") or "").startswith("whatsapp:") or (
        fields.get("From") or ""
    ).startswith("whatsapp:")
    channel = "whatsapp" if whatsapp else "sms"
    value = _base(org_id, ids[0], channel, ids[1], event_id("twilio", sid, status), _iso(now_s))
    match status:
        case "delivered":
            return [Mapped("delivery", value)]
        case "read":
            return [Mapped("open", value)]
        case "undelivered" | "failed":
            code = fields.get("ErrorCode") or ""
            value["kind"] = "hard" if code in _TWILIO_HARD_ERRORS else "soft"
            if code:
                value["reason"] = f"Twilio error {code}"
            return [Mapped("bounce", value)]
        case _:
            return [Unmapped(f"unknown Twilio MessageStatus {status!r}", "unknown_status", raw)]


# --- WhatsApp Cloud API: entry[].changes[].value.{statuses,messages} ------------------------

# Meta error codes for a recipient that cannot receive WhatsApp messages at all.
_WHATSAPP_HARD_ERRORS = frozenset({131026, 131021})


def whatsapp(org_id: str, body: bytes) -> list[Outcome]:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise PayloadError(f"not JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("entry"), list):
        raise PayloadError("a WhatsApp webhook is an object with an entry array")
    out: list[Outcome] = []
    for entry in doc["entry"]:
        for change in entry.get("changes", []) if isinstance(entry, dict) else []:
            value = change.get("value") if isinstance(change, dict) else None
            if not isinstance(value, dict):
                continue
            for status in value.get("statuses") or []:
                out.extend(_whatsapp_status(org_id, status))
            for message in value.get("messages") or []:
                out.append(_whatsapp_message(org_id, message))
    return out


def _whatsapp_status(org_id: str, status: Any) -> list[Outcome]:
    raw = orjson.dumps(status)
    if not isinstance(status, dict):
        return [Unmapped("a status is not a JSON object", "invalid_payload", raw)]
    kind, wamid, stamp = status.get("status"), status.get("id"), str(status.get("timestamp"))
    if not isinstance(wamid, str) or not wamid or not stamp.isdigit():
        return [Unmapped("a status without id or timestamp", "invalid_payload", raw)]
    if kind in ("sent", "deleted"):
        outcome: list[Outcome] = [Ignored(str(kind))]
    else:
        outcome = []
    ids = ids_from_query(status.get("biz_opaque_callback_data"))
    if ids is None:
        if outcome:
            return outcome
        return [_missing("WhatsApp", "biz_opaque_callback_data", raw)]
    remember = Remember(wamid, ids[0], ids[1])
    if outcome:
        return [remember, *outcome]
    value = _base(
        org_id, ids[0], "whatsapp", ids[1], event_id("whatsapp", wamid, str(kind)), _iso(int(stamp))
    )
    match kind:
        case "delivered":
            return [remember, Mapped("delivery", value)]
        case "read" | "played":  # played: the first play of a voice message
            return [remember, Mapped("open", value)]
        case "failed":
            errors = status.get("errors") or []
            first = errors[0] if errors and isinstance(errors[0], dict) else {}
            value["kind"] = "hard" if first.get("code") in _WHATSAPP_HARD_ERRORS else "soft"
            title = first.get("title") or first.get("message")
            if isinstance(title, str) and title:
                value["reason"] = f"{first.get('code')}: {title}"[:1024]
            return [remember, Mapped("bounce", value)]
        case _:
            return [remember, Unmapped(f"unknown WhatsApp status {kind!r}", "unknown_status", raw)]


def _whatsapp_message(org_id: str, message: Any) -> Outcome:
    """An inbound message counts as a reply only when it answers one of ours (``context.id``)."""
    raw = orjson.dumps(message)
    if not isinstance(message, dict):
        return Unmapped("a message is not a JSON object", "invalid_payload", raw)
    context = message.get("context")
    answered = context.get("id") if isinstance(context, dict) else None
    if not isinstance(answered, str) or not answered:
        return Ignored("inbound message without context")
    wamid, stamp = message.get("id"), str(message.get("timestamp"))
    if not isinstance(wamid, str) or not stamp.isdigit():
        return Unmapped("an inbound message without id or timestamp", "invalid_payload", raw)
    value = {
        "event_id": event_id("whatsapp", wamid, "reply"),
        "org_id": org_id,
        "channel": "whatsapp",
        "occurred_at": _iso(int(stamp)),
    }
    return NeedsMessage(answered, value, raw)


# --- Zenvia: MESSAGE_STATUS events, our ids in the message's externalId ---------------------

# Known codes without a counterpart: forwarded to the provider, accepted, deleted by the
# contact, sender verified on the device, and the voice channel's call states.
_ZENVIA_IGNORED = frozenset(
    {"SENT", "ACCEPTED", "DELETED", "VERIFIED", "HANG_UP", "TERMINATED", "RECORDED"}
)


def _client_info(status: Mapping[str, Any]) -> Mapping[str, Any]:
    """``messageStatus.channelData.email.clientInfo`` (machineOpen, userAgent, url), or {}."""
    node: Any = status
    for name in ("channelData", "email", "clientInfo"):
        node = node.get(name) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else {}


def zenvia(org_id: str, body: bytes, channels: Collection[str]) -> list[Outcome]:
    try:
        event = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise PayloadError(f"not JSON: {exc}") from None
    if not isinstance(event, dict):
        raise PayloadError("a Zenvia webhook is a JSON object")
    raw = bytes(body)
    if event.get("type") != "MESSAGE_STATUS":
        return [Ignored(str(event.get("type")))]
    found = event.get("messageStatus")
    status: dict[str, Any] = found if isinstance(found, dict) else {}
    code = status.get("code")
    if not isinstance(code, str) or not isinstance(event.get("id"), str):
        return [
            Unmapped("a MESSAGE_STATUS without messageStatus.code or id", "invalid_payload", raw)
        ]
    if code in _ZENVIA_IGNORED:
        return [Ignored(code)]
    message = event.get("message")
    external = message.get("externalId") if isinstance(message, dict) else None
    ids = ids_from_query(external if isinstance(external, str) else event.get("externalId"))
    if ids is None:
        return [_missing("Zenvia", "message.externalId", raw)]
    channel = event.get("channel")
    if channel not in channels:
        return [Unmapped(f"Zenvia channel {channel!r} is not one of ours", "unknown_channel", raw)]
    at = status.get("timestamp") or event.get("timestamp")
    if not isinstance(at, str):
        return [Unmapped("no timestamp", "invalid_payload", raw)]
    value = _base(org_id, ids[0], str(channel), ids[1], event_id("zenvia", event["id"]), at)
    client = _client_info(status)
    match code:
        case "DELIVERED":
            return [Mapped("delivery", value)]
        case "READ":
            if client.get("machineOpen") is True:  # Apple Mail Privacy Protection (SendGrid)
                value["machine"] = True
            _user_agent(value, client.get("userAgent"))
            return [Mapped("open", value)]
        case "CLICKED":
            url = client.get("url")
            if isinstance(url, str) and url:
                value["url"] = url[:4096]
            _user_agent(value, client.get("userAgent"))
            return [Mapped("click", value)]
        case "NOT_DELIVERED" | "REJECTED":
            # REJECTED: the provider refused the message outright; NOT_DELIVERED: it did not
            # reach the device this time (the reason is in `causes`).
            value["kind"] = "hard" if code == "REJECTED" else "soft"
            causes = status.get("causes")
            first = causes[0] if isinstance(causes, list) and causes else None
            reason = first.get("reason") if isinstance(first, dict) else None
            _reason(value, reason or status.get("description"))
            return [Mapped("bounce", value)]
        case _:
            return [Unmapped(f"unknown Zenvia status {code!r}", "unknown_status", raw)]
