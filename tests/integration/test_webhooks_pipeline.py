"""Provider webhooks end to end (SPEC §7.5): signed provider payloads -> API -> Kafka -> worker
-> exact snapshots, on the real broker, Redis and worker.

The dispatches come from the messaging pipeline (Kafka, as always); everything after them
comes from the providers' webhooks, signed with test keys: SendGrid for e-mail (delivered, a
privacy proxy's open, a person's open, a click, a hard bounce, a spam report, all in one batch,
posted twice as SendGrid retries), Twilio for SMS (delivered, undelivered), WhatsApp Cloud for
WhatsApp (delivered, read, and a reply that names our message only by Meta's id), Zenvia for a
second e-mail. Unmappable events end in the dead letters with the provider's payload.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson
import pytest
import redis.asyncio as aioredis

from counting import CountingConfig
from read_api.app import create_app
from read_api.commands import KafkaPublisher
from read_api.webhooks.signatures import twilio_expected
from simulator.config import SimConfig
from simulator.produce import produce
from simulator.stream import generate
from simulator.webhooks import ProviderKeys, install_secrets, post_all, route
from simulator.world import org_timezones
from streams.dead_letters import H_CODE
from tests.integration.harness import Pipeline, ago, snapshot, wait_for
from tests.integration.streamgen import reference
from tests.read_api.support import clear_org, make_settings
from tests.read_api.test_webhook_signatures import sendgrid_keypair, sendgrid_sign

pytestmark = pytest.mark.integration

TWILIO_TOKEN = "twilio-auth-token-e2e"
META_SECRET = "meta-app-secret-e2e"
ZENVIA_TOKEN = "zenvia-token-e2e"


def dispatch(
    org: str, contact: str, channel: str, message: str, days: float
) -> tuple[str, bytes, dict[str, Any]]:
    value = {
        "event_id": f"d-{message}",
        "org_id": org,
        "contact_id": contact,
        "channel": channel,
        "message_id": message,
        "occurred_at": ago(days),
        "dispatch_kind": "single",
    }
    return ("dispatch", f"{org}:{contact}".encode(), value)


FIXTURES = Path(__file__).resolve().parents[1] / "read_api" / "webhook_fixtures"


def documented_sendgrid(message: str) -> list[dict[str, Any]]:
    """SendGrid's own documented delivered, open and click examples, with what the sending
    pipeline adds (our ids as custom args) and a recent `timestamp` (the documented 2017 and
    2009 ones are outside any 90-day window): otherwise byte for byte the documentation's."""
    events = orjson.loads((FIXTURES / "sendgrid_events.json").read_bytes())
    picked = [e for e in events if e["event"] in ("delivered", "open", "click")]
    for n, event in enumerate(picked):
        event.update(em_contact_id="ana", em_message_id=message, timestamp=unix(3, 60 + n * 60))
    return picked


def unix(days: float, seconds: float = 0) -> int:
    return int(time.time() - days * 86_400 + seconds)


async def test_provider_webhooks_end_in_exact_snapshots(
    pipeline: Pipeline, redis_client: aioredis.Redis
) -> None:
    org = f"hooks-{pipeline.unique}"
    private, public = sendgrid_keypair()
    secrets_file = pipeline.tmp / "webhook-secrets.json"
    secrets_file.write_bytes(
        orjson.dumps(
            [
                {"org_id": org, "provider": "sendgrid", "secret": public},
                {"org_id": org, "provider": "twilio", "secret": TWILIO_TOKEN},
                {"org_id": org, "provider": "whatsapp", "secret": META_SECRET},
                {"org_id": org, "provider": "zenvia", "secret": ZENVIA_TOKEN},
            ]
        )
    )
    settings = make_settings(
        pipeline.tmp,
        kafka_bootstrap=pipeline.bootstrap,
        redis_url=pipeline.redis_url,
        topic_prefix=pipeline.prefix,
        webhook_secrets_file=secrets_file,
    )
    await pipeline.start_worker()
    await pipeline.produce(
        [
            dispatch(org, "ana", "email", "e4", 3),
            dispatch(org, "ana", "email", "e1", 3),
            dispatch(org, "ana", "email", "e2", 3),
            dispatch(org, "ana", "email", "e3", 3),
            dispatch(org, "ana", "sms", "s1", 2),
            dispatch(org, "ana", "sms", "s2", 2),
            dispatch(org, "ana", "whatsapp", "w1", 1),
            dispatch(org, "bia", "email", "z1", 1),
        ]
    )
    publisher = KafkaPublisher(pipeline.bootstrap)
    await publisher.start()
    app = create_app(settings, redis=redis_client, producer=publisher)

    def sg(kind: str, message: str, seconds: float, **fields: Any) -> dict[str, Any]:
        return {
            "email": "ana@example.com",
            "timestamp": unix(3, seconds),
            "event": kind,
            "sg_event_id": f"{kind}-{message}-{seconds}",
            "sg_message_id": f"sg.{message}",
            "em_contact_id": "ana",
            "em_message_id": message,
            **fields,
        }

    batch = [
        *documented_sendgrid("e4"),
        sg("processed", "e1", 1),
        sg("delivered", "e1", 5),
        sg("open", "e1", 8, sg_machine_open=True),  # Apple's proxy, seconds after delivery
        sg("open", "e1", 3600, sg_machine_open=False),  # the person, an hour later
        sg("click", "e1", 3700, url="https://acme.example/offer"),
        sg("delivered", "e2", 5),
        sg("spamreport", "e2", 7200),  # also unsubscribes e-mail as of its time
        sg("bounce", "e3", 30, type="bounce", reason="550 5.1.1 no such user"),
        {**sg("delivered", "e9", 5), "em_contact_id": None},  # not one of ours
    ]
    body = orjson.dumps(batch)

    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://api"
        ) as api:
            for _ in range(2):  # SendGrid retries the whole batch: duplicates count once
                stamp = str(int(time.time()))
                headers = {
                    "X-Twilio-Email-Event-Webhook-Signature": sendgrid_sign(private, stamp, body),
                    "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
                }
                response = await api.post(
                    f"/v1/orgs/{org}/webhooks/sendgrid", content=body, headers=headers
                )
                assert response.status_code == 202, response.text
                assert response.json() == {"published": 10, "ignored": 1, "dead_lettered": 1}

            for message, status, extra in (
                ("s1", "delivered", {}),
                ("s2", "undelivered", {"ErrorCode": "30005"}),
            ):
                path = f"/v1/orgs/{org}/webhooks/twilio?" + urlencode(
                    {"em_contact_id": "ana", "em_message_id": message}
                )
                form = {
                    "MessageSid": f"SM{message}",
                    "MessageStatus": status,
                    "To": "+5511999990000",
                    **extra,
                }
                signature = twilio_expected(TWILIO_TOKEN, f"http://api{path}", list(form.items()))
                response = await api.post(
                    path,
                    content=urlencode(form),
                    headers={
                        "X-Twilio-Signature": signature,
                        "Content-Type": "application/x-www-form-urlencoded",
                    },
                )
                assert response.status_code == 202, response.text

            opaque = urlencode({"em_contact_id": "ana", "em_message_id": "w1"})

            async def meta(value: dict[str, Any]) -> httpx.Response:
                doc = {
                    "object": "whatsapp_business_account",
                    "entry": [
                        {
                            "id": "WABA",
                            "changes": [
                                {
                                    "field": "messages",
                                    "value": {"messaging_product": "whatsapp", **value},
                                }
                            ],
                        }
                    ],
                }
                raw = orjson.dumps(doc)
                sig = "sha256=" + hmac.new(META_SECRET.encode(), raw, hashlib.sha256).hexdigest()
                return await api.post(
                    f"/v1/orgs/{org}/webhooks/whatsapp",
                    content=raw,
                    headers={"X-Hub-Signature-256": sig},
                )

            statuses = [
                {
                    "id": "wamid.W1",
                    "status": status,
                    "timestamp": str(unix(1, s)),
                    "recipient_id": "5511",
                    "biz_opaque_callback_data": opaque,
                }
                for status, s in (("sent", 1), ("delivered", 3), ("read", 600))
            ]
            assert (await meta({"statuses": statuses})).status_code == 202
            reply = {
                "from": "5511999990000",
                "id": "wamid.IN1",
                "timestamp": str(unix(1, 900)),
                "type": "text",
                "text": {"body": "yes please"},
                "context": {"from": "15550783881", "id": "wamid.W1"},
            }
            stranger = {**reply, "id": "wamid.IN2", "context": {"id": "wamid.NOT-OURS"}}
            response = await meta({"messages": [reply, stranger]})
            assert response.json() == {"published": 1, "ignored": 0, "dead_lettered": 1}

            zenvia = {
                "id": "zv-evt-1",
                "timestamp": ago(1, seconds=-60),
                "type": "MESSAGE_STATUS",
                "subscriptionId": "sub",
                "channel": "email",
                "message": {
                    "id": "zv-m",
                    "externalId": urlencode({"em_contact_id": "bia", "em_message_id": "z1"}),
                },
                "messageStatus": {"timestamp": ago(1, seconds=-60), "code": "DELIVERED"},
            }
            response = await api.post(
                f"/v1/orgs/{org}/webhooks/zenvia?token={ZENVIA_TOKEN}", json=zenvia
            )
            assert response.status_code == 202

            # a forged request publishes nothing
            forged = await api.post(f"/v1/orgs/{org}/webhooks/zenvia?token=guess", json=zenvia)
            assert forged.status_code == 401
    finally:
        await publisher.stop()

    def expected_ana(snap: dict[str, Any] | None) -> bool:
        if snap is None:
            return False
        email, sms, wa = (snap["channels"].get(c) for c in ("email", "sms", "whatsapp"))
        return (
            email is not None
            and sms is not None
            and wa is not None
            and (email["dispatched"], email["delivered"], email["opened"], email["clicked"])
            == (4, 3, 2, 2)  # e4: SendGrid's documented delivered, open and click
            and (
                email["machine_opened"],
                email["bounced"],
                email["hard_bounced"],
                email["complained"],
            )
            == (1, 1, 1, 1)
            and (email["status"], email["sending_errors"]) == ("unsubscribed", 0)
            and (sms["delivered"], sms["bounced"], sms["hard_bounced"]) == (1, 1, 1)
            and (wa["delivered"], wa["opened"], wa["replied"]) == (1, 1, 1)
        )

    async def settled() -> bool:
        return expected_ana(await snapshot(redis_client, org, "ana"))

    try:
        await wait_for(settled, timeout=60, interval=0.5, what="ana's webhook figures")
    except AssertionError:
        raise AssertionError(repr(await snapshot(redis_client, org, "ana"))) from None
    ana = await snapshot(redis_client, org, "ana")
    assert ana is not None
    email = ana["channels"]["email"]
    assert email["rates"]["bounce"] == 25.0 and email["rates"]["complaint"] == 33.33
    assert email["engagement"]["engaged"] == 2  # the proxy's open is not engagement

    async def bia_delivered() -> bool:
        bia = await snapshot(redis_client, org, "bia")
        return bia is not None and bia["channels"]["email"]["delivered"] == 1

    await wait_for(bia_delivered, timeout=60, what="bia's Zenvia delivery")

    dead = [
        r
        for r in await pipeline.consume_all("dead-letters")
        if dict(r.headers).get("em-org-id") == org.encode()
    ]
    codes = sorted(dict(r.headers)[H_CODE].decode() for r in dead)
    # the unknown e-mail twice (SendGrid's retry), the reply to a message that is not ours
    assert codes == ["missing_ids", "missing_ids", "unknown_message"]
    assert any(orjson.loads(r.value).get("id") == "wamid.IN2" for r in dead)


async def test_simulate_via_webhooks_gives_the_figures_of_the_kafka_path(
    pipeline: Pipeline, redis_client: aioredis.Redis
) -> None:
    """`engagement-monitor simulate --via webhooks`: the providers' share of a simulated stream
    goes signed through the API, the rest to Kafka; per contact, the e-mail and SMS figures that
    do not depend on sub-second event times equal those of the plain Kafka path."""
    # The simulator dates its traffic from the wall clock, so at some hours a seed leaves no
    # bounce inside the window: take the first seed from 4242 whose traffic has one, so that
    # the comparison below is always about something (its assertion stays as it was).
    for seed in range(4242, 4272):
        config = SimConfig(
            orgs=1, contacts_per_org=25, messages_per_contact=8, seed=seed, malformed_share=0.0
        )
        records = list(generate(config))
        good = [(r.topic, r.key, orjson.loads(r.value)) for r in records if r.kind != "malformed"]
        expected = reference(good, CountingConfig(), config.now)
        if any(
            snap is not None and any(ch.get("bounced") for ch in snap["channels"].values())
            for snap in expected.values()
        ):
            break
    (org,) = org_timezones(config.orgs)
    await clear_org(redis_client, org)
    secrets_file = pipeline.tmp / "sim-webhook-secrets.json"
    settings = make_settings(
        pipeline.tmp,
        kafka_bootstrap=pipeline.bootstrap,
        redis_url=pipeline.redis_url,
        topic_prefix=pipeline.prefix,
        webhook_secrets_file=secrets_file,
    )
    routed = route(records)
    assert routed.sendgrid and routed.twilio and routed.whatsapp_statuses
    keys = ProviderKeys.fresh()
    install_secrets(secrets_file, [org], keys)

    await pipeline.start_worker()
    sent = await produce(routed.kafka, pipeline.bootstrap, pipeline.prefix, None, False)
    assert sent.failed == 0
    publisher = KafkaPublisher(pipeline.bootstrap)
    await publisher.start()
    try:
        app = create_app(settings, redis=redis_client, producer=publisher)
        stats = await post_all(routed, "http://api", keys, httpx.ASGITransport(app=app))
    finally:
        await publisher.stop()
    assert not stats.refused and stats.published > 0

    fields = (
        "dispatched",
        "sending_errors",
        "delivered",
        "bounced",
        "hard_bounced",
        "complained",
        "machine_opened",
    )

    def figures(snap: dict[str, Any] | None) -> dict[str, tuple[int, ...]]:
        if snap is None:
            return {}
        return {
            ch: tuple(snap["channels"][ch][f] for f in fields)
            for ch in ("email", "sms")
            if ch in snap["channels"]
        }

    totals = [
        sum(col)
        for col in zip(*(t for s in expected.values() for t in figures(s).values()), strict=True)
    ]
    by_field = dict(zip(fields, totals, strict=True))
    # the comparison is about something: deliveries, bounces and proxy opens were reported
    assert (
        by_field["delivered"] > 50 and by_field["bounced"] > 0 and by_field["machine_opened"] > 0
    ), by_field

    async def mismatches() -> list[str]:
        wrong = []
        for (o, contact), snap in expected.items():
            got = figures(await snapshot(redis_client, o, contact))
            if got != figures(snap):
                wrong.append(f"{contact}: {got} != {figures(snap)}")
        return wrong

    async def same() -> bool:
        return not await mismatches()

    try:
        await wait_for(same, timeout=90, interval=1.0, what="webhook figures = Kafka figures")
    except AssertionError:
        raise AssertionError("\n".join((await mismatches())[:10])) from None
