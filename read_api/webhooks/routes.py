"""``POST /v1/orgs/{org_id}/webhooks/{provider}`` and Meta's subscription handshake (SPEC §7.5).

No bearer token: each request must carry its provider's own signature, checked against the
org's secret (``EM_WEBHOOK_SECRETS_FILE``) before anything is read from the body; a missing or
wrong one is 401 and publishes nothing. An authentic request is answered 202 only once Kafka
holds every event it maps to (and every dead letter of the events that cannot be mapped), or
503 so the provider retries: its events carry stable ids, so a retry is a duplicate that the
worker counts once. A signed body that cannot be mapped at all is a dead letter too, never a
4xx, which would make the provider retry it forever.
"""

from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import orjson
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response, status
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel

from engagement_monitor import keyspace as ks
from models import identifiers as ids
from read_api.commands import PublishUnavailable, RawRecord, contact_key
from read_api.schemas import Problem, ValidationProblem
from read_api.state import AppState, app_state
from read_api.webhooks import adapters, signatures
from read_api.webhooks.adapters import (
    Ignored,
    Mapped,
    NeedsMessage,
    Outcome,
    PayloadError,
    Remember,
    Unmapped,
)
from read_api.webhooks.secrets import OrgSecret
from streams.dead_letters import DEAD_LETTER_TOPIC, H_CODE, H_REASON, H_RECEIVED_AT

OrgId = Annotated[ids.OrgId, Path(description="The org the provider's events belong to.")]
State = Annotated[AppState, Depends(app_state)]
ProviderName = Literal["sendgrid", "twilio", "whatsapp", "zenvia"]

# Dead letters made here name the webhook they came from instead of a topic, partition and
# offset (docs/webhooks.md): there was no Kafka record before them.
H_SOURCE_WEBHOOK = "em-source-webhook"
H_ORG = "em-org-id"
# A WhatsApp message id is remembered this long: replies come within the 90-day window.
PROVIDER_MESSAGE_TTL_S = 92 * 86_400


class WebhookAccepted(BaseModel):
    """What became of the request's events: published to the input topics, acknowledged
    without a counterpart (processed, queued, sent…), or sent to the dead letters."""

    published: int
    ignored: int
    dead_lettered: int


_INVALID: dict[int | str, dict[str, Any]] = {
    422: {"model": ValidationProblem, "description": "Not a provider or not an org id."},
}
_UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "Missing or wrong provider signature."},
    503: {"model": Problem, "description": "Kafka did not take the events; retry later."},
    **_INVALID,
}


def _refuse(why: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, f"webhook refused: {why}")


def _public_urls(request: Request, public_base: str | None) -> list[str]:
    """The URL Twilio signed: as configured (EM_WEBHOOK_PUBLIC_URL), else as received, with
    and without an explicit port (Twilio signs the URL it was given, and proxies add or drop
    default ports)."""
    url = str(request.url)
    if public_base is not None:
        parts = urlsplit(url)
        base = urlsplit(public_base)
        url = urlunsplit((base.scheme, base.netloc, parts.path, parts.query, ""))
    parts = urlsplit(url)
    urls = [url]
    host = parts.hostname or ""
    if parts.port is not None:
        urls.append(urlunsplit((parts.scheme, host, parts.path, parts.query, "")))
    else:
        port = 443 if parts.scheme == "https" else 80
        urls.append(urlunsplit((parts.scheme, f"{host}:{port}", parts.path, parts.query, "")))
    return urls


def _verify(
    provider: str, secret: OrgSecret, request: Request, body: bytes, state: AppState
) -> str | None:
    headers = request.headers
    match provider:
        case "sendgrid":
            assert secret.sendgrid_key is not None
            return signatures.sendgrid(
                secret.sendgrid_key,
                headers.get("X-Twilio-Email-Event-Webhook-Signature"),
                headers.get("X-Twilio-Email-Event-Webhook-Timestamp"),
                body,
                datetime.now(UTC).timestamp(),
                state.settings.webhook_max_age_seconds,
            )
        case "twilio":
            form = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
            urls = _public_urls(request, state.settings.webhook_public_url)
            return signatures.twilio(secret.secret, headers.get("X-Twilio-Signature"), urls, form)
        case "whatsapp":
            return signatures.meta(secret.secret, headers.get("X-Hub-Signature-256"), body)
        case _:
            return signatures.shared_token(secret.secret, request.query_params.get("token"))


def _map(
    provider: str, org_id: str, request: Request, body: bytes, state: AppState
) -> list[Outcome]:
    try:
        match provider:
            case "sendgrid":
                return adapters.sendgrid(org_id, body)
            case "twilio":
                form = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
                query = dict(request.query_params)
                return adapters.twilio(org_id, form, query, datetime.now(UTC).timestamp())
            case "whatsapp":
                return adapters.whatsapp(org_id, body)
            case _:
                return adapters.zenvia(org_id, body, state.settings.channels)
    except PayloadError as exc:
        return [Unmapped(f"{provider} body: {exc}", "invalid_payload", body)]


async def _resolve_replies(state: AppState, org_id: str, outcomes: list[Outcome]) -> list[Outcome]:
    """WhatsApp: remember which of our messages each wamid is, then give each reply the ids
    of the message it answers (known from that message's earlier status events)."""
    remember = [o for o in outcomes if isinstance(o, Remember)]
    replies = [o for o in outcomes if isinstance(o, NeedsMessage)]
    if not remember and not replies:
        return outcomes
    client = state.store.client
    if remember:
        pipe = client.pipeline(transaction=False)
        for r in remember:
            key = ks.redis_provider_message_key(org_id, "whatsapp", r.provider_message_id)
            pipe.set(key, orjson.dumps([r.contact_id, r.message_id]), ex=PROVIDER_MESSAGE_TTL_S)
        await pipe.execute()
    known: dict[str, tuple[str, str]] = {
        r.provider_message_id: (r.contact_id, r.message_id) for r in remember
    }
    missing = [r.provider_message_id for r in replies if r.provider_message_id not in known]
    if missing:
        keys = [ks.redis_provider_message_key(org_id, "whatsapp", m) for m in missing]
        for wamid, raw in zip(missing, await client.mget(keys), strict=True):
            if raw is not None:
                contact, message = orjson.loads(raw)
                known[wamid] = (contact, message)
    resolved: list[Outcome] = []
    for outcome in outcomes:
        if isinstance(outcome, Remember):
            continue
        if isinstance(outcome, NeedsMessage):
            found = known.get(outcome.provider_message_id)
            if found is None:
                resolved.append(
                    Unmapped(
                        "a reply to a WhatsApp message this org's webhooks never reported "
                        f"(context.id {outcome.provider_message_id!r}): not one of ours, or "
                        "its status events carried no biz_opaque_callback_data",
                        "unknown_message",
                        outcome.payload,
                    )
                )
                continue
            value = {**outcome.value, "contact_id": found[0], "message_id": found[1]}
            resolved.append(Mapped("reply", value))
            continue
        resolved.append(outcome)
    return resolved


def _records(
    state: AppState, provider: str, org_id: str, outcomes: list[Outcome]
) -> list[RawRecord]:
    settings = state.settings
    received = datetime.now(UTC).isoformat().encode()
    records: list[RawRecord] = []
    for outcome in outcomes:
        if isinstance(outcome, Mapped):
            key = contact_key(org_id, outcome.value["contact_id"]).encode()
            headers = [(H_SOURCE_WEBHOOK, provider.encode())]
            records.append(
                (settings.topic(outcome.topic), key, orjson.dumps(outcome.value), headers)
            )
        elif isinstance(outcome, Unmapped):
            headers = [
                (H_SOURCE_WEBHOOK, provider.encode()),
                (H_ORG, org_id.encode()),
                (H_REASON, outcome.reason.encode()),
                (H_CODE, outcome.code.encode()),
                (H_RECEIVED_AT, received),
            ]
            records.append((settings.topic(DEAD_LETTER_TOPIC), None, outcome.payload, headers))
    return records


def build_webhook_router() -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["webhooks"])

    @router.post(
        "/orgs/{org_id}/webhooks/{provider}",
        status_code=status.HTTP_202_ACCEPTED,
        response_model=WebhookAccepted,
        responses=_UNAUTHORIZED,
        summary="Receive a provider's status webhook (SPEC §7.5)",
        description=(
            "SendGrid's signed event webhook, Twilio status callbacks, WhatsApp Cloud API "
            "webhooks and Zenvia MESSAGE_STATUS events, each authenticated by the provider's "
            "own signature (Zenvia: `?token=`). Our ids travel in the provider's metadata: "
            "see docs/webhooks.md."
        ),
    )
    async def receive(
        org_id: OrgId,
        provider: Annotated[ProviderName, Path(description="Which provider posts.")],
        request: Request,
        state: State,
    ) -> WebhookAccepted:
        secret = state.webhooks.get(org_id, provider)
        if secret is None:
            raise _refuse(f"no {provider} secret is configured for this org")
        body = await request.body()
        problem = _verify(provider, secret, request, body, state)
        if problem is not None:
            state.metrics.webhook_refused(provider)
            raise _refuse(problem)
        outcomes = _map(provider, org_id, request, body, state)
        if provider == "whatsapp":
            outcomes = await _resolve_replies(state, org_id, outcomes)
        records = _records(state, provider, org_id, outcomes)
        try:
            if records:
                await state.publisher.publish_many(records)
        except PublishUnavailable as exc:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                f"{exc}; nothing is assumed: the provider's retry is safe",
                headers={"Retry-After": "5"},
            ) from None
        result = WebhookAccepted(
            published=sum(isinstance(o, Mapped) for o in outcomes),
            ignored=sum(isinstance(o, Ignored) for o in outcomes),
            dead_lettered=sum(isinstance(o, Unmapped) for o in outcomes),
        )
        state.metrics.webhook_events(
            provider, result.published, result.ignored, result.dead_lettered
        )
        return result

    @router.get(
        "/orgs/{org_id}/webhooks/whatsapp",
        response_model=None,
        responses={
            200: {
                "description": "The challenge, as text.",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            },
            403: {"model": Problem, "description": "Not this org's verify token."},
            **_INVALID,
        },
        summary="Meta's webhook subscription handshake",
    )
    async def verify_subscription(
        org_id: OrgId,
        state: State,
        mode: Annotated[str, Query(alias="hub.mode")],
        token: Annotated[str, Query(alias="hub.verify_token")],
        challenge: Annotated[str, Query(alias="hub.challenge", max_length=256)],
    ) -> Response:
        """Meta calls this once when the webhook is configured; answering the challenge
        proves we own the URL. Only the org's `verify_token` is accepted."""
        secret = state.webhooks.get(org_id, "whatsapp")
        expected = secret.verify_token if secret is not None else None
        if mode != "subscribe" or expected is None or signatures.shared_token(expected, token):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "verify token does not match")
        return PlainTextResponse(challenge)

    return router
