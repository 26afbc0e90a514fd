"""``simulate --via webhooks``: the simulator plays the channel providers (SPEC §7.5).

What a provider would report goes to the API's webhook endpoints, signed as that provider
signs: e-mail deliveries, opens (with Apple's proxy flag), clicks, bounces and spam reports as
SendGrid event batches; SMS deliveries and bounces as Twilio status callbacks; WhatsApp
deliveries, reads, failures and replies as Meta webhook batches. Everything else (dispatches,
contact changes, unsubscribes, SMS and WhatsApp clicks, SMS replies, flagged bot clicks that
SendGrid cannot express, and the malformed records) goes to Kafka as usual, as the messaging
pipeline would send it.

The keys are the simulator's own: it writes a fresh SendGrid key pair's public half, a Twilio
auth token and a Meta app secret for its orgs into ``EM_WEBHOOK_SECRETS_FILE`` (entries of
other orgs are kept), and the API, which re-reads that file when it changes, checks the
signatures with them. So the API must share that file (the same machine, as in ``make demo``).

The Kafka records go first, then the webhooks: the counting core is order-independent, and an
interaction that arrives before its dispatch waits for it anyway. WhatsApp statuses go before
replies, since a reply names our message only by the wamid its statuses reported.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import secrets as token_source
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from simulator.config import SimRecord

SENDGRID_BATCH = 500
META_BATCH = 100
CONCURRENCY = 16


@dataclass(frozen=True)
class ProviderKeys:
    """The secrets the simulator signs with, and what the API must be told."""

    sendgrid_private: ec.EllipticCurvePrivateKey
    twilio_token: str
    meta_secret: str

    @classmethod
    def fresh(cls) -> ProviderKeys:
        return cls(
            ec.generate_private_key(ec.SECP256R1()),
            token_source.token_urlsafe(24),
            token_source.token_urlsafe(24),
        )

    @property
    def sendgrid_public(self) -> str:
        der = self.sendgrid_private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return base64.b64encode(der).decode()

    def entries(self, org_id: str) -> list[dict[str, str]]:
        return [
            {"org_id": org_id, "provider": "sendgrid", "secret": self.sendgrid_public},
            {"org_id": org_id, "provider": "twilio", "secret": self.twilio_token},
            {"org_id": org_id, "provider": "whatsapp", "secret": self.meta_secret},
        ]


def install_secrets(path: Path, orgs: Iterable[str], keys: ProviderKeys) -> None:
    """Write ``keys`` for ``orgs`` into the API's secrets file, keeping other orgs' entries."""
    orgs = set(orgs)
    try:
        existing = orjson.loads(path.read_bytes()) if path.exists() else []
    except orjson.JSONDecodeError:
        existing = []
    kept = [e for e in existing if isinstance(e, dict) and e.get("org_id") not in orgs]
    entries = kept + [entry for org in sorted(orgs) for entry in keys.entries(org)]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(orjson.dumps(entries, option=orjson.OPT_INDENT_2))
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


@dataclass
class WebhookStats:
    posted: Counter[str] = field(default_factory=Counter)  # provider -> events posted
    requests: Counter[str] = field(default_factory=Counter)  # provider -> requests
    refused: Counter[str] = field(default_factory=Counter)  # provider -> non-202 answers
    published: int = 0
    dead_lettered: int = 0
    elapsed_s: float = 0.0

    def render(self) -> str:
        by = ", ".join(
            f"{p} {self.posted[p]:,} in {self.requests[p]:,} request(s)"
            for p in sorted(self.posted)
        )
        lines = [
            f"webhooks: {sum(self.posted.values()):,} provider events ({by}) in "
            f"{self.elapsed_s:.1f} s; the API published {self.published:,} and dead-lettered "
            f"{self.dead_lettered:,}"
        ]
        if self.refused:
            lines.append(f"  refused: {dict(self.refused)}")
        return "\n".join(lines)


@dataclass
class Routed:
    """The stream split by where each record goes."""

    kafka: list[SimRecord] = field(default_factory=list)
    sendgrid: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # org -> events
    twilio: list[tuple[str, dict[str, str], dict[str, str]]] = field(default_factory=list)
    whatsapp_statuses: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    whatsapp_messages: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def _unix(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp())


def _wamid(message_id: str) -> str:
    return "wamid." + base64.urlsafe_b64encode(message_id.encode()).decode().rstrip("=")


def route(records: Iterable[SimRecord]) -> Routed:
    """Each good record a provider would report, as that provider's event; the rest for Kafka."""
    routed = Routed()
    for record in records:
        if record.kind == "malformed" or record.topic not in (
            "delivery",
            "open",
            "click",
            "reply",
            "bounce",
            "complaint",
        ):
            routed.kafka.append(record)
            continue
        v = orjson.loads(record.value)
        org, channel = v["org_id"], v["channel"]
        ids = {"em_contact_id": v["contact_id"], "em_message_id": v["message_id"]}
        topic = record.topic
        if channel == "email" and not (topic == "click" and v.get("bot")) and topic != "reply":
            event: dict[str, Any] = {
                "email": f"{v['contact_id']}@example.com",
                "timestamp": _unix(v["occurred_at"]),
                "sg_event_id": v["event_id"],
                "sg_message_id": f"sg.{v['message_id']}",
                **ids,
            }
            match topic:
                case "delivery":
                    event["event"] = "delivered"
                case "open":
                    event |= {"event": "open", "sg_machine_open": bool(v.get("machine"))}
                case "click":
                    event |= {"event": "click", "url": v.get("url") or "https://example.com/"}
                case "bounce":
                    event |= {
                        "event": "bounce",
                        "type": "bounce" if v["kind"] == "hard" else "blocked",
                    }
                    event["reason"] = v.get("reason") or "550 unknown recipient"
                case _:
                    event["event"] = "spamreport"
            routed.sendgrid.setdefault(org, []).append(event)
        elif channel == "sms" and topic in ("delivery", "bounce"):
            form = {
                "MessageSid": "SM" + hashlib.sha256(v["message_id"].encode()).hexdigest()[:32],
                "AccountSid": "AC" + "0" * 32,
                "To": "+5511999990000",
                "From": "+15017250604",
                "MessageStatus": "delivered" if topic == "delivery" else "undelivered",
            }
            if topic == "bounce":
                form["ErrorCode"] = "30005" if v["kind"] == "hard" else "30003"
            routed.twilio.append((org, form, ids))
        elif channel == "whatsapp" and topic in ("delivery", "open", "bounce"):
            status: dict[str, Any] = {
                "id": _wamid(v["message_id"]),
                "status": {"delivery": "delivered", "open": "read", "bounce": "failed"}[topic],
                "timestamp": str(_unix(v["occurred_at"])),
                "recipient_id": "5511999990000",
                "biz_opaque_callback_data": urlencode(ids),
            }
            if topic == "bounce":
                code = 131026 if v["kind"] == "hard" else 131049
                status["errors"] = [{"code": code, "title": v.get("reason") or "failed"}]
            routed.whatsapp_statuses.setdefault(org, []).append(status)
        elif channel == "whatsapp" and topic == "reply":
            message = {
                "from": "5511999990000",
                "id": "wamid.in." + v["event_id"],
                "timestamp": str(_unix(v["occurred_at"])),
                "type": "text",
                "text": {"body": "ok"},
                "context": {"from": "15550783881", "id": _wamid(v["message_id"])},
            }
            routed.whatsapp_messages.setdefault(org, []).append(message)
        else:
            routed.kafka.append(record)
    return routed


class WebhookClient:
    """Signs and posts as each provider does."""

    def __init__(self, client: httpx.AsyncClient, keys: ProviderKeys, stats: WebhookStats) -> None:
        self.client = client
        self.keys = keys
        self.stats = stats
        self.gate = asyncio.Semaphore(CONCURRENCY)

    async def _post(
        self, provider: str, events: int, path: str, body: bytes, headers: dict[str, str]
    ) -> None:
        async with self.gate:
            for attempt in range(5):
                response = await self.client.post(path, content=body, headers=headers)
                if response.status_code != 503:
                    break
                await asyncio.sleep(0.5 * (attempt + 1))  # as a provider would retry
        self.stats.requests[provider] += 1
        if response.status_code != 202:
            self.stats.refused[provider] += 1
            return
        self.stats.posted[provider] += events
        answer = response.json()
        self.stats.published += answer["published"]
        self.stats.dead_lettered += answer["dead_lettered"]

    async def sendgrid(self, org: str, events: list[dict[str, Any]]) -> None:
        body = orjson.dumps(events)
        stamp = str(int(time.time()))
        signature = self.keys.sendgrid_private.sign(
            stamp.encode() + body, ec.ECDSA(hashes.SHA256())
        )
        headers = {
            "Content-Type": "application/json",
            "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
        }
        await self._post(
            "sendgrid", len(events), f"/v1/orgs/{org}/webhooks/sendgrid", body, headers
        )

    async def twilio(self, org: str, form: dict[str, str], query: dict[str, str]) -> None:
        from read_api.webhooks.signatures import twilio_expected

        path = f"/v1/orgs/{org}/webhooks/twilio?{urlencode(query)}"
        url = str(self.client.base_url).rstrip("/") + path
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": twilio_expected(self.keys.twilio_token, url, list(form.items())),
        }
        await self._post("twilio", 1, path, urlencode(form).encode(), headers)

    async def whatsapp(self, org: str, value: dict[str, Any], events: int) -> None:
        doc = {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "id": "102290129340398",
                    "changes": [
                        {"field": "messages", "value": {"messaging_product": "whatsapp", **value}}
                    ],
                }
            ],
        }
        body = orjson.dumps(doc)
        digest = hmac.new(self.keys.meta_secret.encode(), body, hashlib.sha256).hexdigest()
        headers = {"Content-Type": "application/json", "X-Hub-Signature-256": f"sha256={digest}"}
        await self._post("whatsapp", events, f"/v1/orgs/{org}/webhooks/whatsapp", body, headers)


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


async def post_all(
    routed: Routed,
    api_url: str,
    keys: ProviderKeys,
    transport: httpx.AsyncBaseTransport | None = None,
) -> WebhookStats:
    """Post every provider event of ``routed``; statuses before replies. ``transport``: an
    in-process app, for tests."""
    stats = WebhookStats()
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=api_url, timeout=60.0, transport=transport) as http:
        hooks = WebhookClient(http, keys, stats)
        first = [
            *(
                hooks.sendgrid(org, batch)
                for org, events in routed.sendgrid.items()
                for batch in _chunks(events, SENDGRID_BATCH)
            ),
            *(hooks.twilio(org, form, query) for org, form, query in routed.twilio),
            *(
                hooks.whatsapp(org, {"statuses": batch}, len(batch))
                for org, statuses in routed.whatsapp_statuses.items()
                for batch in _chunks(statuses, META_BATCH)
            ),
        ]
        await asyncio.gather(*first)
        await asyncio.gather(
            *(
                hooks.whatsapp(org, {"messages": batch}, len(batch))
                for org, messages in routed.whatsapp_messages.items()
                for batch in _chunks(messages, META_BATCH)
            )
        )
    stats.elapsed_s = time.monotonic() - started
    return stats
