"""The webhook routes in process (SPEC §7.5): signatures decide before anything is published,
and what is published is exactly the mapped events and dead letters of the request.

The app publishes into a `MemoryPublisher`; Redis points nowhere, so no test here reaches it
(WhatsApp replies, which need it, run against the real services in
tests/integration/test_webhooks_pipeline.py).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from read_api.app import create_app
from read_api.commands import MemoryPublisher
from read_api.webhooks.signatures import twilio_expected
from tests.read_api.support import make_settings
from tests.read_api.test_webhook_signatures import sendgrid_keypair, sendgrid_sign

ORG = "org-hooks"
TWILIO_TOKEN = "twilio-auth-token-1"
META_SECRET = "meta-app-secret-1"
ZENVIA_TOKEN = "zenvia-shared-token-1"
VERIFY_TOKEN = "meta-verify-token-1"


class Hooks:
    def __init__(
        self,
        client: httpx.AsyncClient,
        publisher: MemoryPublisher,
        sendgrid_key: ec.EllipticCurvePrivateKey,
    ) -> None:
        self.client = client
        self.publisher = publisher
        self.sendgrid_key = sendgrid_key

    async def sendgrid(
        self,
        events: list[dict[str, Any]],
        *,
        org: str = ORG,
        sign: bool = True,
        stamp: int | None = None,
    ) -> httpx.Response:
        body = orjson.dumps(events)
        ts = str(stamp if stamp is not None else int(time.time()))
        headers = {"Content-Type": "application/json"}
        if sign:
            headers["X-Twilio-Email-Event-Webhook-Signature"] = sendgrid_sign(
                self.sendgrid_key, ts, body
            )
            headers["X-Twilio-Email-Event-Webhook-Timestamp"] = ts
        return await self.client.post(
            f"/v1/orgs/{org}/webhooks/sendgrid", content=body, headers=headers
        )

    async def twilio(
        self, form: dict[str, str], query: dict[str, str], *, token: str = TWILIO_TOKEN
    ) -> httpx.Response:
        path = f"/v1/orgs/{ORG}/webhooks/twilio" + (f"?{urlencode(query)}" if query else "")
        signature = twilio_expected(token, f"http://api{path}", list(form.items()))
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": signature,
        }
        return await self.client.post(path, content=urlencode(form), headers=headers)

    async def whatsapp(self, doc: dict[str, Any], *, secret: str = META_SECRET) -> httpx.Response:
        body = orjson.dumps(doc)
        signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        headers = {"Content-Type": "application/json", "X-Hub-Signature-256": signature}
        return await self.client.post(
            f"/v1/orgs/{ORG}/webhooks/whatsapp", content=body, headers=headers
        )

    async def zenvia(self, event: dict[str, Any], *, token: str = ZENVIA_TOKEN) -> httpx.Response:
        return await self.client.post(f"/v1/orgs/{ORG}/webhooks/zenvia?token={token}", json=event)

    def published(self) -> list[tuple[str, dict[str, Any]]]:
        """(short topic, value) of each input-topic record, in order."""
        return [
            (topic.removeprefix("engagement."), orjson.loads(value))
            for topic, _key, value, _headers in self.publisher.raw
            if not topic.endswith("dead-letters")
        ]

    def dead(self) -> list[tuple[dict[str, bytes], bytes]]:
        return [
            (dict(headers), value)
            for topic, _key, value, headers in self.publisher.raw
            if topic.endswith("dead-letters")
        ]


@pytest.fixture
async def hooks(tmp_path: Path) -> AsyncIterator[Hooks]:
    private, public = sendgrid_keypair()
    secrets = [
        {"org_id": ORG, "provider": "sendgrid", "secret": public},
        {"org_id": ORG, "provider": "twilio", "secret": TWILIO_TOKEN},
        {
            "org_id": ORG,
            "provider": "whatsapp",
            "secret": META_SECRET,
            "verify_token": VERIFY_TOKEN,
        },
        {"org_id": ORG, "provider": "zenvia", "secret": ZENVIA_TOKEN},
    ]
    (tmp_path / "webhook-secrets.json").write_bytes(orjson.dumps(secrets))
    settings = make_settings(
        tmp_path,
        redis_url="redis://127.0.0.1:1/0",
        webhook_secrets_file=tmp_path / "webhook-secrets.json",
    )
    publisher = MemoryPublisher()
    app = create_app(settings, producer=publisher)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        yield Hooks(client, publisher, private)


def sg_event(kind: str, **fields: Any) -> dict[str, Any]:
    return {
        "email": "ana@example.com",
        "timestamp": int(time.time()) - 60,
        "event": kind,
        "sg_event_id": f"sg-{kind}-{len(fields)}",
        "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
        "em_contact_id": "ana",
        "em_message_id": "m1",
        **fields,
    }


async def test_sendgrid_batch_maps_every_event_and_dead_letters_what_it_cannot(
    hooks: Hooks,
) -> None:
    events = [
        sg_event("processed"),
        sg_event("delivered"),
        sg_event("open", sg_machine_open=True, useragent="Mozilla/5.0"),
        sg_event("click", url="https://acme.example/a"),
        sg_event("bounce", type="blocked", reason="452 mailbox full"),
        sg_event("spamreport"),
        {**sg_event("delivered"), "em_contact_id": None, "sg_event_id": "no-ids"},
    ]
    response = await hooks.sendgrid(events)
    assert response.status_code == 202, response.text
    assert response.json() == {"published": 5, "ignored": 1, "dead_lettered": 1}
    topics = [(t, v.get("machine"), v.get("kind")) for t, v in hooks.published()]
    assert topics == [
        ("delivery", None, None),
        ("open", True, None),
        ("click", None, None),
        ("bounce", None, "soft"),
        ("complaint", None, None),
    ]
    first = hooks.published()[0][1]
    assert first["event_id"] == "sendgrid:sg-delivered-0"
    assert (first["org_id"], first["contact_id"], first["message_id"], first["channel"]) == (
        ORG,
        "ana",
        "m1",
        "email",
    )
    ((headers, payload),) = hooks.dead()
    assert headers["em-code"] == b"missing_ids" and b"em_contact_id" in headers["em-reason"]
    assert headers["em-source-webhook"] == b"sendgrid" and headers["em-org-id"] == ORG.encode()
    assert orjson.loads(payload)["sg_event_id"] == "no-ids"  # the provider's own event


async def test_a_wrong_or_missing_signature_is_401_and_publishes_nothing(hooks: Hooks) -> None:
    assert (await hooks.sendgrid([sg_event("delivered")], sign=False)).status_code == 401
    stale = int(time.time()) - 3600
    assert (await hooks.sendgrid([sg_event("delivered")], stamp=stale)).status_code == 401
    form = {"MessageSid": "SM1", "MessageStatus": "delivered", "To": "+5511999990000"}
    ids = {"em_contact_id": "ana", "em_message_id": "m1"}
    assert (await hooks.twilio(form, ids, token="not-the-token")).status_code == 401
    doc = {"object": "whatsapp_business_account", "entry": []}
    assert (await hooks.whatsapp(doc, secret="other")).status_code == 401
    assert (await hooks.zenvia({"type": "MESSAGE_STATUS"}, token="guess")).status_code == 401
    # an org without a secret for the provider: 401 whatever is sent
    assert (await hooks.sendgrid([sg_event("delivered")], org="other-org")).status_code == 401
    assert hooks.publisher.raw == []


async def test_a_tampered_body_is_refused(hooks: Hooks) -> None:
    body = orjson.dumps([sg_event("delivered")])
    stamp = str(int(time.time()))
    headers = {
        "X-Twilio-Email-Event-Webhook-Signature": sendgrid_sign(hooks.sendgrid_key, stamp, body),
        "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
    }
    tampered = body.replace(b'"ana"', b'"eve"')
    response = await hooks.client.post(
        f"/v1/orgs/{ORG}/webhooks/sendgrid", content=tampered, headers=headers
    )
    assert response.status_code == 401
    assert hooks.publisher.raw == []


async def test_twilio_status_callback_with_our_ids_in_the_url(hooks: Hooks) -> None:
    ids = {"em_contact_id": "ana", "em_message_id": "m1"}
    base = {
        "MessageSid": "SM1",
        "AccountSid": "AC1",
        "To": "whatsapp:+5511999990000",
        "From": "whatsapp:+14155238886",
    }
    for status, extra in (
        ("sent", {}),
        ("delivered", {}),
        ("read", {}),
        ("undelivered", {"ErrorCode": "30005"}),
    ):
        response = await hooks.twilio({**base, "MessageStatus": status, **extra}, ids)
        assert response.status_code == 202, response.text
    published = hooks.published()
    assert [(t, v["channel"], v.get("kind")) for t, v in published] == [
        ("delivery", "whatsapp", None),
        ("open", "whatsapp", None),
        ("bounce", "whatsapp", "hard"),
    ]
    assert published[0][1]["event_id"] == "twilio:SM1:delivered"


async def test_twilio_without_our_ids_is_a_dead_letter_not_a_4xx(hooks: Hooks) -> None:
    response = await hooks.twilio(
        {"MessageSid": "SM2", "MessageStatus": "delivered", "To": "+1555"}, {}
    )
    assert response.status_code == 202
    ((headers, payload),) = hooks.dead()
    assert headers["em-code"] == b"missing_ids"
    assert orjson.loads(payload)["MessageSid"] == "SM2"


async def test_whatsapp_statuses_and_an_unknown_status(hooks: Hooks) -> None:
    opaque = urlencode({"em_contact_id": "ana", "em_message_id": "m1"})
    statuses = [
        {
            "id": "wamid.A",
            "status": "sent",
            "timestamp": str(int(time.time()) - 9),
            "recipient_id": "5511",
            "biz_opaque_callback_data": opaque,
        },
        {
            "id": "wamid.A",
            "status": "delivered",
            "timestamp": str(int(time.time()) - 8),
            "recipient_id": "5511",
            "biz_opaque_callback_data": opaque,
        },
        {
            "id": "wamid.A",
            "status": "read",
            "timestamp": str(int(time.time()) - 7),
            "recipient_id": "5511",
            "biz_opaque_callback_data": opaque,
        },
        {
            "id": "wamid.A",
            "status": "warped",
            "timestamp": str(int(time.time()) - 7),
            "recipient_id": "5511",
            "biz_opaque_callback_data": opaque,
        },
    ]
    doc = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "WABA",
                "changes": [
                    {
                        "field": "messages",
                        "value": {"messaging_product": "whatsapp", "statuses": statuses},
                    }
                ],
            }
        ],
    }
    # Redis is unreachable here: the statuses' wamids cannot be remembered, so the request
    # fails as a whole (503) rather than losing what a later reply would need.
    response = await hooks.whatsapp(doc)
    assert response.status_code == 503
    assert hooks.publisher.raw == []


async def test_whatsapp_subscription_handshake(hooks: Hooks) -> None:
    query = {
        "hub.mode": "subscribe",
        "hub.verify_token": VERIFY_TOKEN,
        "hub.challenge": "1158201444",
    }
    response = await hooks.client.get(f"/v1/orgs/{ORG}/webhooks/whatsapp", params=query)
    assert (response.status_code, response.text) == (200, "1158201444")
    wrong = {**query, "hub.verify_token": "not-it"}
    assert (
        await hooks.client.get(f"/v1/orgs/{ORG}/webhooks/whatsapp", params=wrong)
    ).status_code == 403
    other = await hooks.client.get("/v1/orgs/other-org/webhooks/whatsapp", params=query)
    assert other.status_code == 403


async def test_zenvia_message_status_with_external_id(hooks: Hooks) -> None:
    external = urlencode({"em_contact_id": "ana", "em_message_id": "m1"})
    machine = {
        "channelData": {"email": {"clientInfo": {"machineOpen": True, "sourceIp": "1.2.3.4"}}}
    }
    codes: list[tuple[str, dict[str, Any]]] = [
        ("SENT", {}),
        ("DELIVERED", {}),
        ("READ", machine),
        ("CLICKED", {}),
        ("REJECTED", {"description": "blocked"}),
    ]
    for n, (code, extra) in enumerate(codes):
        event = {
            "id": f"zv-{n}",
            "timestamp": "2026-06-01T12:00:00.000Z",
            "type": "MESSAGE_STATUS",
            "subscriptionId": "sub-1",
            "channel": "email",
            "message": {"id": "zenvia-msg-1", "externalId": external, "direction": "OUT"},
            "messageStatus": {"timestamp": "2026-06-01T12:00:00.000Z", "code": code, **extra},
        }
        assert (await hooks.zenvia(event)).status_code == 202
    assert [(t, v.get("machine"), v.get("kind")) for t, v in hooks.published()] == [
        ("delivery", None, None),
        ("open", True, None),
        ("click", None, None),
        ("bounce", None, "hard"),
    ]


async def test_a_batch_of_1000_sendgrid_events_is_one_request(hooks: Hooks) -> None:
    """How fast is `make bench`'s business (webhook events per second into Kafka)."""
    events = [
        {**sg_event("delivered"), "sg_event_id": f"sg-{i}", "em_message_id": f"m{i}"}
        for i in range(1000)
    ]
    response = await hooks.sendgrid(events)
    assert response.status_code == 202 and response.json()["published"] == 1000
    assert len({v["event_id"] for _, v in hooks.published()}) == 1000


async def test_publish_failure_is_503_so_the_provider_retries(hooks: Hooks) -> None:
    hooks.publisher.fail = True
    response = await hooks.sendgrid([sg_event("delivered")])
    assert response.status_code == 503
    assert "retry" in response.json()["detail"]
