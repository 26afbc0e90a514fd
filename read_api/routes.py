"""The `/v1` routes (SPEC §5). Reads come from Redis; writes become Kafka commands (202).

No `from __future__ import annotations` here: the routes are built inside a function whose
annotations refer to local values (the configured channel enum), which FastAPI must evaluate.
"""

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import orjson
from fastapi import (
    APIRouter,
    Body,
    Depends,
    Header,
    HTTPException,
    Path,
    Query,
    Response,
    status,
)
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse
from pydantic import WithJsonSchema

from models import identifiers as ids
from models.snapshot import Snapshot
from models.tiers import Tier
from read_api import commands, export, org_activity, org_views
from read_api.auth import NOT_FOUND, Caller, Reader, Writer
from read_api.commands import PublishUnavailable
from read_api.schemas import (
    Accepted,
    ContactPatch,
    Heatmap,
    ListPut,
    MessageAccepted,
    MessageRequest,
    Overview,
    Problem,
    SearchPage,
    SegmentItem,
    SegmentPage,
    TierChangesSummary,
    TierHistory,
    ValidationProblem,
    WhoAmI,
)
from read_api.state import AppState, app_state
from read_api.tokens import Principal

# Ids as models.identifiers defines them (422 when refused); the `id` convertor of
# read_api.id_paths decodes each path segment on its own, so an id may contain `/`.
ContactId = Annotated[ids.ContactId, Path(description="The contact's id.")]
ListId = Annotated[ids.ListId, Path(description="The list's id.")]
State = Annotated[AppState, Depends(app_state)]
TierQuery = Annotated[Tier, Query(description="The engagement tier.")]
Idempotency = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=128,
        pattern=ids.ID_PATTERN,
        description=(
            "Makes a retry safe: the same key gives the command the same id, so whoever "
            "reads it counts it once. Send one with every write, and the same one when "
            "retrying after a 503 or a lost answer (a 503 means Kafka did not confirm the "
            "command, not that it will never arrive)."
        ),
    ),
]

_AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "No token, or a token that is not known."},
    404: {"model": Problem, "description": "Not in your org, or no such contact."},
    422: {"model": ValidationProblem, "description": "Bad input; the message says what to fix."},
}
_WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    **_AUTH_ERRORS,
    403: {"model": Problem, "description": "The agent role may only read."},
    503: {"model": Problem, "description": "Kafka cannot take the command; retry later."},
}


def invalid(field: str, message: str, value: Any) -> RequestValidationError:
    """A 422 in the same shape as pydantic's, for checks that depend on configuration."""
    return RequestValidationError(
        [{"type": "value_error", "loc": field.split("."), "msg": message, "input": value}]
    )


def check_channel(state: AppState, where: str, channel: str) -> None:
    if channel not in state.settings.channels:
        raise invalid(
            where,
            f"unknown channel {channel!r}: use one of {', '.join(state.settings.channels)}",
            channel,
        )


async def require_contact(state: AppState, org_id: str, contact_id: str) -> None:
    """Writes act only on contacts the monitor shows, so they cannot probe for ids either."""
    if not await state.store.has_snapshot(org_id, contact_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=NOT_FOUND)


async def publish(
    state: AppState,
    short_topic: str,
    org_id: str,
    contact_id: str,
    record: dict[str, Any],
    idempotency_key: str | None,
    principal: Principal,
    action: str,
) -> str:
    """Publish the command, then its `audit` record; 503 unless Kafka confirmed both.

    Both carry who asked. With an Idempotency-Key, the command's id is derived from it, so a
    retry is the same command (see `Idempotency`).
    """
    id_field = "request_id" if "request_id" in record else "event_id"
    if idempotency_key is not None:
        record[id_field] = commands.command_id(org_id, short_topic, idempotency_key)
    topic = state.settings.topic(short_topic)
    key = commands.contact_key(org_id, contact_id)
    headers = commands.actor_headers(principal.name, principal.role)
    audit = commands.audit_record(
        org_id,
        contact_id,
        actor_name=principal.name,
        actor_role=principal.role,
        action=action,
        command_topic=topic,
        command_id=str(record[id_field]),
        idempotency_key=idempotency_key,
    )
    try:
        await state.publisher.publish(topic, key, record, headers)
        await state.publisher.publish(state.settings.topic("audit"), key, audit, headers)
    except PublishUnavailable as exc:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail=(
                f"the command was not accepted: {exc}; try again with the same "
                "Idempotency-Key (Kafka may still take this one once it answers)"
            ),
        ) from None
    state.metrics.commands.labels(short_topic, str(record.get("type", short_topic))).inc()
    return topic


def heatmap(state: AppState, org_id: str, as_of: str, grids: dict[str, dict[str, Any]]) -> Heatmap:
    settings = state.settings
    return Heatmap.model_validate(
        {
            "as_of": as_of,
            "timezone": settings.org_timezones.get(org_id, settings.default_timezone),
            "window_days": settings.window_days,
            "channels": grids,
        }
    )


def build_router(channels: tuple[str, ...]) -> APIRouter:
    """Routes for one configuration; the channel set appears as an enum in the OpenAPI document."""
    # The configured channels as an enum in the OpenAPI document (clients and schemathesis see
    # the real choices); the check itself is ``check_channel``, with a message that lists them.
    channel_type = Annotated[str, WithJsonSchema({"type": "string", "enum": list(channels)})]
    SegmentChannel = Annotated[
        channel_type | None, Query(description="Omit for the overall segment.")
    ]
    router = APIRouter(prefix="/v1")

    @router.get(
        "/whoami",
        response_model=WhoAmI,
        responses={401: _AUTH_ERRORS[401]},
        summary="The org, role and name of the token (the page uses it to show or hide actions)",
        tags=["access"],
    )
    async def whoami(principal: Caller, state: State) -> WhoAmI:
        return WhoAmI(
            org_id=principal.org_id,
            role=principal.role,
            name=principal.name,
            may_write=principal.may_write,
            channels=list(state.settings.channels),
        )

    @router.get(
        "/orgs/{org_id:id}/contacts/{contact_id:id}/monitor",
        response_model=Snapshot,
        responses=_AUTH_ERRORS,
        summary="The contact's monitor snapshot",
        tags=["read"],
    )
    async def monitor(
        org_id: str, contact_id: ContactId, _principal: Reader, state: State
    ) -> Response:
        raw = await state.store.snapshot_json(org_id, contact_id)
        if raw is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=NOT_FOUND)
        # Served byte for byte as the worker wrote it: validating and re-encoding every read
        # would cost more than the read itself; the worker's shape is tested against Snapshot.
        return Response(raw, media_type="application/json")

    @router.get(
        "/orgs/{org_id:id}/segments",
        response_model=SegmentPage,
        responses=_AUTH_ERRORS,
        summary="The contacts of a tier, overall or per channel, most engaged first",
        tags=["read"],
    )
    async def segments(
        org_id: str,
        _principal: Reader,
        state: State,
        tier: TierQuery,
        channel: SegmentChannel = None,
        cursor: Annotated[
            str | None,
            Query(
                max_length=200,
                pattern=r"^[0-9]{5}\|.+$",
                description="`next_cursor` of the previous page.",
            ),
        ] = None,
        limit: Annotated[int, Query(ge=1, le=500, description="Page size.")] = 50,
    ) -> SegmentPage:
        if channel is not None:
            check_channel(state, "query.channel", channel)
        page = await state.store.segment(org_id, channel, tier, cursor, limit)
        found = await state.store.registrations(org_id, [c for c, _ in page.items])
        return SegmentPage(
            tier=tier,
            channel=channel,
            items=[
                SegmentItem(contact_id=c, name=reg and reg["name"], rate=r)
                for (c, r), reg in zip(page.items, found, strict=True)
            ],
            next_cursor=page.next_cursor,
        )

    @router.get(
        "/orgs/{org_id:id}/contacts/{contact_id:id}/tier-history",
        response_model=TierHistory,
        responses=_AUTH_ERRORS,
        summary="The contact's tier changes of the window, newest first (SPEC §7.4)",
        tags=["read"],
    )
    async def tier_history(
        org_id: str, contact_id: ContactId, _principal: Reader, state: State
    ) -> TierHistory:
        await require_contact(state, org_id, contact_id)
        raw = await state.store.history_json(org_id, contact_id)
        items = orjson.loads(raw) if raw is not None else []
        # The worker keeps the window's changes; one that left it since its last write is
        # not shown either.
        start = datetime.now(UTC) - timedelta(days=state.settings.window_days)
        kept = [i for i in items if datetime.fromisoformat(i["changed_at"]) >= start]
        return TierHistory.model_validate({"items": kept})

    @router.get(
        "/orgs/{org_id:id}/overview",
        response_model=Overview,
        responses=_AUTH_ERRORS,
        summary="The org at a glance (SPEC §7.4): contacts per tier and per subscription status",
        tags=["read"],
    )
    async def org_overview(org_id: str, _principal: Reader, state: State) -> Overview:
        counts = await org_views.overview(state.store, org_id, state.settings.channels)
        return Overview.model_validate(counts)

    @router.get(
        "/orgs/{org_id:id}/heatmap",
        response_model=Heatmap,
        responses=_AUTH_ERRORS,
        summary="The org's interactions by hour of week, per channel",
        tags=["read"],
    )
    async def org_heatmap(org_id: str, _principal: Reader, state: State) -> Heatmap:
        as_of, grids = await org_activity.org_heatmap(state.store, org_id, state.settings.channels)
        return heatmap(state, org_id, as_of, grids)

    @router.get(
        "/orgs/{org_id:id}/contacts/{contact_id:id}/heatmap",
        response_model=Heatmap,
        responses=_AUTH_ERRORS,
        summary="The contact's interactions by hour of week, per channel",
        tags=["read"],
    )
    async def contact_heatmap(
        org_id: str, contact_id: ContactId, _principal: Reader, state: State
    ) -> Heatmap:
        await require_contact(state, org_id, contact_id)
        as_of, grids = await org_activity.contact_heatmap(
            state.store, org_id, contact_id, state.settings.channels
        )
        return heatmap(state, org_id, as_of, grids)

    @router.get(
        "/orgs/{org_id:id}/tier-changes",
        response_model=TierChangesSummary,
        responses=_AUTH_ERRORS,
        summary="Tier changes of the last 24 hours and 7 days, and the newest ones",
        tags=["read"],
    )
    async def org_tier_changes(org_id: str, _principal: Reader, state: State) -> TierChangesSummary:
        summary = await org_activity.tier_changes(state.store, org_id)
        return TierChangesSummary.model_validate(summary)

    @router.get(
        "/orgs/{org_id:id}/contacts",
        response_model=SearchPage,
        responses=_AUTH_ERRORS,
        summary="Find contacts by id, or by the start of their name, e-mail or phone",
        tags=["read"],
    )
    async def find_contacts(
        org_id: str,
        _principal: Reader,
        state: State,
        q: Annotated[
            str,
            Query(
                min_length=1,
                max_length=256,
                description=(
                    "A contact id (exact), or the start of a name, e-mail or phone "
                    "(case-insensitive; phones by their digits)."
                ),
            ),
        ],
        cursor: Annotated[
            str | None,
            Query(
                max_length=600,
                pattern=r"^(id|name|email|phone):",
                description="`next_cursor` of the previous page.",
            ),
        ] = None,
        limit: Annotated[int, Query(ge=1, le=100, description="Page size.")] = 20,
    ) -> SearchPage:
        items, next_cursor = await org_views.search(state.store, org_id, q, cursor, limit)
        return SearchPage.model_validate({"items": items, "next_cursor": next_cursor})

    @router.get(
        "/orgs/{org_id:id}/segments.csv",
        response_class=StreamingResponse,
        responses={
            200: {
                "description": "The whole segment, most engaged first.",
                "content": {"text/csv": {"schema": {"type": "string"}}},
            },
            **_AUTH_ERRORS,
        },
        summary="The whole segment as CSV (SPEC §7.4), streamed",
        tags=["read"],
    )
    async def segment_csv(
        org_id: str,
        _principal: Reader,
        state: State,
        tier: TierQuery,
        channel: SegmentChannel = None,
    ) -> StreamingResponse:
        if channel is not None:
            check_channel(state, "query.channel", channel)
        scope = channel or "overall"
        filename = f"segment-{tier}-{scope}.csv"
        return StreamingResponse(
            export.segment_rows(state.store, org_id, channel, tier),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )

    @router.patch(
        "/orgs/{org_id:id}/contacts/{contact_id:id}",
        status_code=status.HTTP_202_ACCEPTED,
        response_model=Accepted,
        responses=_WRITE_ERRORS,
        summary="Edit registration data (a `contact` upsert command)",
        tags=["write"],
    )
    async def edit_contact(
        org_id: str,
        contact_id: ContactId,
        patch: ContactPatch,
        principal: Writer,
        state: State,
        key: Idempotency = None,
    ) -> Accepted:
        await require_contact(state, org_id, contact_id)
        changes: dict[str, Any] = {}
        for name in patch.model_fields_set:
            value = getattr(patch, name)
            if name == "origin" and value is not None:
                # The label is computed by whoever renders the origin; the record carries fields.
                changes[name] = {k: v for k, v in value.model_dump().items() if k != "label"}
            else:
                changes[name] = value
        record = commands.upsert_record(org_id, contact_id, changes)
        topic = await publish(state, "contact", org_id, contact_id, record, key, principal, "edit")
        return Accepted(event_id=record["event_id"], topic=topic)

    @router.delete(
        "/orgs/{org_id:id}/contacts/{contact_id:id}",
        status_code=status.HTTP_202_ACCEPTED,
        response_model=Accepted,
        responses=_WRITE_ERRORS,
        summary="Delete the contact for good (a `contact` delete command)",
        tags=["write"],
    )
    async def delete_contact(
        org_id: str, contact_id: ContactId, principal: Writer, state: State, key: Idempotency = None
    ) -> Accepted:
        await require_contact(state, org_id, contact_id)
        record = commands.delete_record(org_id, contact_id)
        topic = await publish(
            state, "contact", org_id, contact_id, record, key, principal, "delete"
        )
        return Accepted(event_id=record["event_id"], topic=topic)

    @router.put(
        "/orgs/{org_id:id}/contacts/{contact_id:id}/lists/{list_id:id}",
        status_code=status.HTTP_202_ACCEPTED,
        response_model=Accepted,
        responses=_WRITE_ERRORS,
        summary="Include the contact in a list (a `contact` list_added command)",
        tags=["write"],
    )
    async def include_in_list(
        org_id: str,
        contact_id: ContactId,
        list_id: ListId,
        principal: Writer,
        state: State,
        body: Annotated[ListPut | None, Body()] = None,
        key: Idempotency = None,
    ) -> Accepted:
        await require_contact(state, org_id, contact_id)
        name = body.name if body is not None else None
        record = commands.list_added_record(org_id, contact_id, list_id, name)
        topic = await publish(
            state, "contact", org_id, contact_id, record, key, principal, "list_added"
        )
        return Accepted(event_id=record["event_id"], topic=topic)

    @router.delete(
        "/orgs/{org_id:id}/contacts/{contact_id:id}/lists/{list_id:id}",
        status_code=status.HTTP_202_ACCEPTED,
        response_model=Accepted,
        responses=_WRITE_ERRORS,
        summary="Remove the contact from a list (a `contact` list_removed command)",
        tags=["write"],
    )
    async def remove_from_list(
        org_id: str,
        contact_id: ContactId,
        list_id: ListId,
        principal: Writer,
        state: State,
        key: Idempotency = None,
    ) -> Accepted:
        await require_contact(state, org_id, contact_id)
        record = commands.list_removed_record(org_id, contact_id, list_id)
        topic = await publish(
            state, "contact", org_id, contact_id, record, key, principal, "list_removed"
        )
        return Accepted(event_id=record["event_id"], topic=topic)

    @router.post(
        "/orgs/{org_id:id}/contacts/{contact_id:id}/channels/{channel}/unsubscribe",
        status_code=status.HTTP_202_ACCEPTED,
        response_model=Accepted,
        responses=_WRITE_ERRORS,
        summary="Unsubscribe the contact from a channel (an `unsubscribe` event)",
        tags=["write"],
    )
    async def unsubscribe(
        org_id: str,
        contact_id: ContactId,
        channel: Annotated[channel_type, Path(description="The channel to unsubscribe from.")],
        principal: Writer,
        state: State,
        key: Idempotency = None,
    ) -> Accepted:
        check_channel(state, "path.channel", channel)
        await require_contact(state, org_id, contact_id)
        record = commands.unsubscribe_record(org_id, contact_id, channel)
        topic = await publish(
            state, "unsubscribe", org_id, contact_id, record, key, principal, "unsubscribe"
        )
        return Accepted(event_id=record["event_id"], topic=topic)

    @router.post(
        "/orgs/{org_id:id}/contacts/{contact_id:id}/messages",
        status_code=status.HTTP_202_ACCEPTED,
        response_model=MessageAccepted,
        responses=_WRITE_ERRORS,
        summary="Ask the messaging pipeline to send a message (a `send-requests` record)",
        tags=["write"],
    )
    async def send_message(
        org_id: str,
        contact_id: ContactId,
        message: MessageRequest,
        principal: Writer,
        state: State,
        key: Idempotency = None,
    ) -> MessageAccepted:
        check_channel(state, "body.channel", message.channel)
        await require_contact(state, org_id, contact_id)
        record = commands.send_request_record(
            org_id,
            contact_id,
            message.channel,
            text=message.text,
            template_id=message.template_id,
            variables=message.variables,
            requested_by=principal.name or principal.role,
        )
        topic = await publish(
            state, "send-requests", org_id, contact_id, record, key, principal, "send_message"
        )
        return MessageAccepted(request_id=record["request_id"], topic=topic)

    return router
