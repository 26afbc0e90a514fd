"""Every mapping row of docs/webhooks.md, on the providers' own documented examples
(tests/read_api/webhook_fixtures, SOURCES.md names each) and, where a provider documents no
example, on events built from its field tables (said so where it is done)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import orjson
import pytest

from read_api.webhooks import adapters
from read_api.webhooks.adapters import Ignored, Mapped, NeedsMessage, Remember, Unmapped

FIXTURES = Path(__file__).parent / "webhook_fixtures"
ORG = "acme"
IDS = {"em_contact_id": "ana", "em_message_id": "m-1"}
CHANNELS = ("sms", "email", "whatsapp")
OLD_IE = "Mozilla/4.0 (compatible; MSIE 6.1; Windows XP; .NET CLR 1.1.4322; .NET CLR 2.0.50727)"


def fixture(name: str) -> Any:
    return orjson.loads((FIXTURES / name).read_bytes())


def sendgrid_example(kind: str, type_: str | None = None) -> dict[str, Any]:
    for event in fixture("sendgrid_events.json"):
        if event["event"] == kind and (type_ is None or event.get("type") == type_):
            return {**event, **IDS}  # custom args come back as top-level keys
    raise KeyError(kind)


def one(outcomes: list[adapters.Outcome]) -> Mapped:
    mapped = [o for o in outcomes if isinstance(o, Mapped)]
    assert len(mapped) == 1, outcomes
    return mapped[0]


# --- SendGrid ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "type_", "topic", "extra"),
    [
        ("delivered", None, "delivery", {}),
        (
            "open",
            None,
            "open",
            {"user_agent": OLD_IE},
        ),
        ("click", None, "click", {"url": "http://example.com/blog/news.html"}),
        ("bounce", "bounce", "bounce", {"kind": "hard", "reason": "500 unknown recipient"}),
        ("bounce", "blocked", "bounce", {"kind": "soft", "reason": "500 unknown recipient"}),
        ("dropped", None, "bounce", {"kind": "hard", "reason": "Bounced Address"}),
        ("spamreport", None, "complaint", {}),
    ],
)
def test_sendgrid_event_maps_to_our_topic(
    kind: str, type_: str | None, topic: str, extra: dict[str, Any]
) -> None:
    event = sendgrid_example(kind, type_)
    mapped = one(adapters.sendgrid(ORG, orjson.dumps([event])))
    assert mapped.topic == topic
    value = mapped.value
    assert value["event_id"] == f"sendgrid:{event['sg_event_id']}"
    assert (value["org_id"], value["contact_id"], value["message_id"], value["channel"]) == (
        ORG,
        "ana",
        "m-1",
        "email",
    )
    assert value["occurred_at"] == "2017-12-15T00:59:29+00:00" or kind == "click"
    assert {k: value[k] for k in extra} == extra
    assert "machine" not in value


def test_sendgrid_machine_open_is_flagged() -> None:
    event = {**sendgrid_example("open"), "sg_machine_open": True}
    assert one(adapters.sendgrid(ORG, orjson.dumps([event]))).value["machine"] is True


def test_sendgrid_unsubscribe_is_a_channel_unsubscribe_without_message() -> None:
    mapped = one(adapters.sendgrid(ORG, orjson.dumps([sendgrid_example("unsubscribe")])))
    assert mapped.topic == "unsubscribe" and "message_id" not in mapped.value
    assert mapped.value["channel"] == "email"


@pytest.mark.parametrize(
    "kind", ["processed", "deferred", "group_unsubscribe", "group_resubscribe"]
)
def test_sendgrid_events_without_a_counterpart_are_acknowledged(kind: str) -> None:
    assert adapters.sendgrid(ORG, orjson.dumps([sendgrid_example(kind)])) == [Ignored(kind)]


def test_sendgrid_documented_batch_without_our_ids_is_dead_lettered_with_the_event() -> None:
    events = fixture("sendgrid_events.json")  # as documented: no custom args at all
    outcomes = adapters.sendgrid(ORG, orjson.dumps(events))
    dead = [o for o in outcomes if isinstance(o, Unmapped)]
    assert len(dead) == 8 and all(o.code == "missing_ids" for o in dead)
    assert next(orjson.loads(o.payload)["sg_event_id"] for o in dead) == "6g4ZI7SA-xmRDv57GoPIPw=="
    assert sum(isinstance(o, Ignored) for o in outcomes) == 4


def test_sendgrid_string_timestamp_and_capitalised_event() -> None:
    event = {**sendgrid_example("delivered"), "timestamp": "1513299569", "event": "Delivered"}
    assert one(adapters.sendgrid(ORG, orjson.dumps([event]))).topic == "delivery"


def test_sendgrid_unknown_event_is_a_dead_letter() -> None:
    event = {**sendgrid_example("delivered"), "event": "teleported"}
    (outcome,) = adapters.sendgrid(ORG, orjson.dumps([event]))
    assert isinstance(outcome, Unmapped) and outcome.code == "unknown_status"


def test_sendgrid_body_that_is_not_an_array_is_a_payload_error() -> None:
    with pytest.raises(adapters.PayloadError):
        adapters.sendgrid(ORG, b'{"event": "delivered"}')
    with pytest.raises(adapters.PayloadError):
        adapters.sendgrid(ORG, b"not json")


# --- Twilio -----------------------------------------------------------------------------------


def twilio_form(status: str, **fields: str) -> list[tuple[str, str]]:
    documented = dict(parse_qsl((FIXTURES / "twilio_sent.form").read_text()))
    documented.update(MessageStatus=status, SmsStatus=status, **fields)
    return list(documented.items())


def test_twilio_documented_sent_callback_is_acknowledged() -> None:
    form = parse_qsl((FIXTURES / "twilio_sent.form").read_text())
    assert adapters.twilio(ORG, form, IDS, 1_780_000_000) == [Ignored("sent")]


@pytest.mark.parametrize(
    ("status", "fields", "topic", "extra"),
    [
        ("delivered", {}, "delivery", {}),
        ("read", {"To": "whatsapp:+5511999990000"}, "open", {"channel": "whatsapp"}),
        (
            "undelivered",
            {"ErrorCode": "30003"},
            "bounce",
            {"kind": "soft", "reason": "Twilio error 30003"},
        ),
        ("undelivered", {"ErrorCode": "30005"}, "bounce", {"kind": "hard"}),
        ("failed", {"ErrorCode": "21211"}, "bounce", {"kind": "hard"}),
    ],
)
def test_twilio_status_maps_to_our_topic(
    status: str, fields: dict[str, str], topic: str, extra: dict[str, Any]
) -> None:
    # Built from the documented `sent` example and the status table of the Message resource.
    mapped = one(adapters.twilio(ORG, twilio_form(status, **fields), IDS, 1_780_000_000))
    assert mapped.topic == topic
    assert mapped.value["event_id"] == f"twilio:SM1342fe1b2c904d1ab04f0fc7a58abca9:{status}"
    assert mapped.value["channel"] == extra.get("channel", "sms")
    assert mapped.value["occurred_at"] == "2026-05-28T20:26:40+00:00"  # when it arrived
    assert {k: mapped.value[k] for k in extra if k != "channel"} == {
        k: v for k, v in extra.items() if k != "channel"
    }


@pytest.mark.parametrize(
    "status", ["queued", "sending", "sent", "accepted", "scheduled", "canceled"]
)
def test_twilio_statuses_without_a_counterpart_are_acknowledged(status: str) -> None:
    assert adapters.twilio(ORG, twilio_form(status), IDS, 0) == [Ignored(status)]


def test_twilio_without_our_ids_or_with_an_unknown_status() -> None:
    (missing,) = adapters.twilio(ORG, twilio_form("delivered"), {}, 0)
    assert isinstance(missing, Unmapped) and missing.code == "missing_ids"
    (unknown,) = adapters.twilio(ORG, twilio_form("vanished"), IDS, 0)
    assert isinstance(unknown, Unmapped) and unknown.code == "unknown_status"


# --- WhatsApp Cloud API -----------------------------------------------------------------------


def with_opaque(doc: dict[str, Any], status: str | None = None) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    for item in doc["entry"][0]["changes"][0]["value"]["statuses"]:
        item["biz_opaque_callback_data"] = urlencode(IDS)
        if status is not None:
            item["status"] = status
    return doc


def test_whatsapp_documented_sent_is_acknowledged_and_its_message_remembered() -> None:
    outcomes = adapters.whatsapp(ORG, orjson.dumps(with_opaque(fixture("whatsapp_sent.json"))))
    wamid = "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA="
    assert outcomes == [Remember(wamid, "ana", "m-1"), Ignored("sent")]
    # as documented (no biz_opaque_callback_data): acknowledged, nothing to remember
    assert adapters.whatsapp(ORG, (FIXTURES / "whatsapp_sent.json").read_bytes()) == [
        Ignored("sent")
    ]


@pytest.mark.parametrize(
    ("status", "topic"), [("delivered", "delivery"), ("read", "open"), ("played", "open")]
)
def test_whatsapp_status_maps_to_our_topic(status: str, topic: str) -> None:
    # Meta documents no delivered / read example: the sent example with its status changed.
    doc = with_opaque(fixture("whatsapp_sent.json"), status)
    mapped = one(adapters.whatsapp(ORG, orjson.dumps(doc)))
    assert mapped.topic == topic
    assert mapped.value["event_id"] == (
        f"whatsapp:wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA=:{status}"
    )
    assert mapped.value["occurred_at"] == "2025-06-15T23:27:53+00:00"
    assert (mapped.value["contact_id"], mapped.value["message_id"]) == ("ana", "m-1")


def test_whatsapp_documented_failed_is_a_soft_bounce_with_the_reason() -> None:
    mapped = one(adapters.whatsapp(ORG, orjson.dumps(with_opaque(fixture("whatsapp_failed.json")))))
    assert mapped.topic == "bounce" and mapped.value["kind"] == "soft"
    assert mapped.value["reason"].startswith("131049: This message was not delivered")
    failed = with_opaque(fixture("whatsapp_failed.json"))
    failed["entry"][0]["changes"][0]["value"]["statuses"][0]["errors"][0]["code"] = 131026
    assert one(adapters.whatsapp(ORG, orjson.dumps(failed))).value["kind"] == "hard"


def test_whatsapp_documented_status_without_our_ids_is_a_dead_letter() -> None:
    doc = fixture("whatsapp_failed.json")
    (outcome,) = adapters.whatsapp(ORG, orjson.dumps(doc))
    assert isinstance(outcome, Unmapped) and outcome.code == "missing_ids"
    assert orjson.loads(outcome.payload)["status"] == "failed"


def test_whatsapp_documented_button_reply_needs_the_message_it_answers() -> None:
    (outcome,) = adapters.whatsapp(ORG, (FIXTURES / "whatsapp_button_reply.json").read_bytes())
    assert isinstance(outcome, NeedsMessage)
    assert (
        outcome.provider_message_id
        == "wamid.HBgLMTQxMjU1NTA4MjkVAgASGBQzQUNCNjk5RDUwNUZGMUZEM0VBRAA="
    )
    assert outcome.value["event_id"] == (
        "whatsapp:wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA=:reply"
    )
    assert outcome.value["occurred_at"] == "2025-06-16T16:24:05+00:00"


def test_whatsapp_inbound_message_without_context_is_not_a_reply() -> None:
    doc = fixture("whatsapp_button_reply.json")
    del doc["entry"][0]["changes"][0]["value"]["messages"][0]["context"]
    assert adapters.whatsapp(ORG, orjson.dumps(doc)) == [Ignored("inbound message without context")]


# --- Zenvia -----------------------------------------------------------------------------------


def zenvia_event(code: str, channel: str = "email", **status: Any) -> dict[str, Any]:
    """Zenvia's documented event with the current `message` object of its OpenAPI schema
    (no published example carries `message.externalId` or `channelData`)."""
    event = fixture("zenvia_sent.json")
    event["channel"] = channel
    event["message"] = {"id": event["messageId"], "externalId": urlencode(IDS), "direction": "OUT"}
    event["messageStatus"] = {**event["messageStatus"], "code": code, **status}
    return event


def test_zenvia_documented_sent_is_acknowledged() -> None:
    assert adapters.zenvia(ORG, (FIXTURES / "zenvia_sent.json").read_bytes(), CHANNELS) == [
        Ignored("SENT")
    ]


@pytest.mark.parametrize(
    ("code", "status", "topic", "extra"),
    [
        ("DELIVERED", {}, "delivery", {}),
        ("READ", {}, "open", {}),
        (
            "READ",
            {
                "channelData": {
                    "email": {"clientInfo": {"machineOpen": True, "sourceIp": "1.2.3.4"}}
                }
            },
            "open",
            {"machine": True},
        ),
        (
            "CLICKED",
            {
                "channelData": {
                    "email": {
                        "clientInfo": {"url": "https://acme.example/x", "sourceIp": "1.2.3.4"}
                    }
                }
            },
            "click",
            {"url": "https://acme.example/x"},
        ),
        (
            "NOT_DELIVERED",
            {"causes": [{"reason": "Mailbox full"}]},
            "bounce",
            {"kind": "soft", "reason": "Mailbox full"},
        ),
        (
            "REJECTED",
            {},
            "bounce",
            {"kind": "hard", "reason": "The message has been forwarded to the provider"},
        ),
    ],
)
def test_zenvia_status_maps_to_our_topic(
    code: str, status: dict[str, Any], topic: str, extra: dict[str, Any]
) -> None:
    mapped = one(adapters.zenvia(ORG, orjson.dumps(zenvia_event(code, **status)), CHANNELS))
    assert mapped.topic == topic
    assert mapped.value["event_id"] == "zenvia:65690785-99d3-45a4-8d76-3c04529b795c"
    assert mapped.value["occurred_at"] == "2019-09-17T12:31:05-03:00"
    assert {k: mapped.value[k] for k in extra} == extra


def test_zenvia_unknown_channel_missing_ids_and_unknown_status_are_dead_letters() -> None:
    (channel,) = adapters.zenvia(ORG, orjson.dumps(zenvia_event("DELIVERED", "telegram")), CHANNELS)
    assert isinstance(channel, Unmapped) and channel.code == "unknown_channel"
    no_ids = fixture("zenvia_sent.json")
    no_ids["messageStatus"]["code"] = "DELIVERED"
    (missing,) = adapters.zenvia(ORG, orjson.dumps(no_ids), CHANNELS)
    assert isinstance(missing, Unmapped) and missing.code == "missing_ids"
    (unknown,) = adapters.zenvia(ORG, orjson.dumps(zenvia_event("EVAPORATED")), CHANNELS)
    assert isinstance(unknown, Unmapped) and unknown.code == "unknown_status"


def test_event_ids_longer_than_ours_are_hashed_stably() -> None:
    long = "x" * 200
    assert adapters.event_id("sendgrid", long) == adapters.event_id("sendgrid", long)
    assert len(adapters.event_id("sendgrid", long)) <= 128
