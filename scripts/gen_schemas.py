"""Write ``schemas/<topic>.schema.json`` (JSON Schema 2020-12) for every topic, from ``models/``.

The pydantic models are the contract the worker enforces; generating the schemas from them (and
failing a test when the committed files drift, ``tests/simulator/test_schemas.py``) keeps the
files that producers read equal to what the worker accepts.

    .venv/bin/python scripts/gen_schemas.py           # (re)write schemas/
    .venv/bin/python scripts/gen_schemas.py --check   # exit 1 when schemas/ is out of date
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Literal

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter  # noqa: E402

from models.events import ENGAGEMENT_MODELS, REJECTION_CODES, ContactEvent  # noqa: E402
from models.outputs import AuditRecord, DispatchStatus, TierChange  # noqa: E402
from read_api.webhooks.adapters import WEBHOOK_REJECTION_CODES  # noqa: E402

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_DIR = ROOT / "schemas"
CANONICAL_KEY = '"{org_id}:{contact_id}" (UTF-8)'

# The codes the worker (models.events) and the webhooks (read_api.webhooks.adapters) use, so
# the schema cannot drift from them.
RejectionCode = Literal[(*REJECTION_CODES, *WEBHOOK_REJECTION_CODES)]  # type: ignore[valid-type]


class DeadLetterHeaders(BaseModel):
    """Headers are UTF-8 text; other headers of the original record are kept. A dead letter
    the worker made names the record's topic, partition and offset; one the API's provider
    webhooks made (SPEC §7.5) names the webhook and the org instead, and its value is the
    provider's own event."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    source_topic: str | None = Field(
        None,
        alias="em-source-topic",
        description=(
            "The topic the record was read from, in full, as read (prefix included: "
            "engagement.open), so a fixed record can be replayed to it as is. "
            "Dead letters of the worker."
        ),
    )
    source_partition: str | None = Field(
        None,
        alias="em-source-partition",
        pattern=r"^[0-9]+$",
        description="Partition it was read from, in decimal. Dead letters of the worker.",
    )
    source_offset: str | None = Field(
        None,
        alias="em-source-offset",
        pattern=r"^[0-9]+$",
        description="Offset it was read at, in decimal. Dead letters of the worker.",
    )
    source_webhook: Literal["sendgrid", "twilio", "whatsapp", "zenvia"] | None = Field(
        None,
        alias="em-source-webhook",
        description="The provider webhook the event came from. Dead letters of the API.",
    )
    org_id: str | None = Field(
        None,
        alias="em-org-id",
        description="The org whose webhook URL received the event. Dead letters of the API.",
    )
    code: RejectionCode = Field(alias="em-code", description="Why, for machines.")
    reason: str = Field(alias="em-reason", description="Why, for people: what to fix.")
    received_at: AwareDatetime = Field(
        alias="em-received-at", description="When the worker or the API rejected it (RFC 3339)."
    )


# What each topic's record means (SPEC §2, §4), put at the top of its schema.
TOPIC_DOCS: dict[str, str] = {
    "dispatch": "A message was sent (or attempted) to a contact on a channel.",
    "delivery": "The channel confirmed delivery of a message.",
    "open": "The contact opened / read a message (e-mail open, WhatsApp read receipt).",
    "click": "The contact clicked a link or button of a message.",
    "reply": "The contact answered a message.",
    "bounce": (
        "The channel reports the message as not delivered (SPEC §7.2). Counted as bounced "
        "only while the message has no delivery and no interaction."
    ),
    "complaint": (
        "The contact reported the message as spam (SPEC §7.2). It also unsubscribes the "
        "contact from the channel as of occurred_at, exactly as an unsubscribe would."
    ),
    "unsubscribe": "The contact unsubscribed from a channel.",
    "contact": (
        "Contact-base changes: profile upsert, delete, list added/removed, (re)subscribe; "
        "`type` tells which."
    ),
    "tier-changes": (
        "Published by the worker: a contact's engagement tier changed, overall (channel null) "
        "or on one channel; one record per change."
    ),
    "dispatch-status": (
        "Published by the worker: a dispatch was made to a channel the contact had "
        "unsubscribed from, so the message has status sending_error."
    ),
    "dead-letters": (
        "Published by the worker: a record that could not be used, with its original key and "
        "value bytes unchanged. This schema describes the HEADERS the worker adds (header name "
        "-> UTF-8 text); the value is whatever was received."
    ),
    "audit": (
        "Published by the API: one record per write it accepted (edit, delete, lists, "
        "unsubscribe, send message), after the command itself: who asked (the token's name "
        "and role), when, and which command (its topic and id). The command records carry "
        "the same `em-actor-name` / `em-actor-role` headers."
    ),
}

# Field meanings, added wherever a property of that name has no description of its own.
FIELD_DOCS: dict[str, str] = {
    "event_id": "Unique per event; a repeated event_id is a duplicate and counts once.",
    "org_id": "The tenant.",
    "contact_id": "The contact, unique within the org.",
    "channel": "One of the worker's configured channels (EM_CHANNELS; default sms, email, "
    "whatsapp); anything else is dead-lettered as unknown_channel.",
    "message_id": "The message, unique within the contact; all events of a message share it.",
    "occurred_at": "Event time, RFC 3339 with a UTC offset; at most 5 minutes in the future. "
    "Events older than the 90-day window are ignored.",
    "dispatch_kind": "single (a one-off or bulk send) or automated (a flow).",
    "campaign_id": "The campaign or flow the message belongs to.",
    "url": "The link clicked; absent for buttons without one.",
    "machine": "Opened by a privacy proxy (e.g. Apple Mail Privacy Protection, Zenvia's "
    "machineOpen), not by the person: proves delivery, but is not an open or engagement "
    "unless the org counts machine events (EM_EXCLUDE_MACHINE_EVENTS). A JSON boolean.",
    "bot": "Clicked by a link scanner, as the provider says. An unflagged click dated less than "
    "EM_BOT_CLICK_SECONDS (default 2) after the delivery (or the dispatch without one), and not "
    "before it, is a bot's too. A JSON boolean.",
    "user_agent": "The user agent the provider saw; kept for people reading the event.",
    "kind": "hard (the address or number will never work) or soft (a temporary failure).",
    "reason": "The provider's reason, for people.",
    "type": "What the contact record does: upsert, delete, list_added, list_removed, subscribe.",
    "name": "Display name; null clears it.",
    "phone": "E.164 (+ and up to 15 digits); null clears it.",
    "email": "E-mail address; null clears it.",
    "created_at": "When the contact was created in the platform (contact since).",
    "origin": "Where the contact came from; the worker renders its label.",
    "list_id": "The list.",
    "list_name": "The list's display name (list_id is shown when absent).",
    "previous_tier": "Tier before the change, null when the scope had none.",
    "tier": "Tier after the change, null when the scope has none any more.",
    "rate": "Engagement rate in percent, rounded half-up to 2 decimals, that decided the tier.",
    "changed_at": "When the worker saw the change (RFC 3339, UTC).",
    "cause": "event (a record changed it) or expiry (messages left the window).",
    "status": "Always sending_error.",
}


# Origins are free text (webchat, messenger, ...), not the engagement channel set.
ORIGIN_FIELD_DOCS: dict[str, str] = {
    "type": "Which origin; decides the fields and the label the worker renders.",
    "app": "The integrated application.",
    "spec": "The application's source (page, form, ...).",
    "campaign": "The campaign the contact came from.",
    "channel": "Where the contact came from: free text (whatsapp, webchat, messenger, ...), "
    "not limited to the engagement channels.",
    "account": "The channel account or credential; absent for e.g. webchat.",
    "file": "The imported file name.",
    "flow": "The chatbot flow.",
}


def _describe(schema: dict[str, Any], docs: dict[str, str]) -> None:
    props = schema.get("properties")
    if not isinstance(props, dict):
        return
    for name, prop in props.items():
        if isinstance(prop, dict) and "description" not in prop and name in docs:
            prop["description"] = docs[name]


def _describe_fields(schema: dict[str, Any]) -> None:
    _describe(schema, FIELD_DOCS)
    for name, definition in schema.get("$defs", {}).items():
        _describe(definition, ORIGIN_FIELD_DOCS if name.endswith("Origin") else FIELD_DOCS)


def _finish(topic: str, schema: dict[str, Any], key: str, output: bool) -> dict[str, Any]:
    _describe_fields(schema)
    doc = TOPIC_DOCS[topic]
    own = schema.get("description")
    if own:
        doc = f"{doc}\n\n{own}"
    direction = (
        "written by the API"
        if topic == "audit"
        else "written by the worker"
        if output
        else "read by the worker"
    )
    doc += (
        f"\n\nTopic: {{EM_TOPIC_PREFIX}}{topic} (default engagement.{topic}), {direction}. "
        f"Key: {key}."
    )
    if not output:
        doc += " Value: a UTF-8 JSON object of at most 65536 bytes; unknown fields are ignored."
    schema["description"] = doc
    schema["$schema"] = SCHEMA_DIALECT
    schema["x-topic"] = topic
    return schema


def build_schemas() -> dict[str, dict[str, Any]]:
    """Topic short name -> its JSON Schema, built in memory (no file is touched)."""
    out: dict[str, dict[str, Any]] = {}
    for topic, model in ENGAGEMENT_MODELS.items():
        out[topic] = _finish(
            topic, model.model_json_schema(mode="validation"), CANONICAL_KEY, False
        )
    contact = TypeAdapter(ContactEvent).json_schema(mode="validation")
    contact["title"] = "ContactEvent"
    out["contact"] = _finish("contact", contact, CANONICAL_KEY, False)
    out["tier-changes"] = _finish(
        "tier-changes", TierChange.model_json_schema(mode="serialization"), CANONICAL_KEY, True
    )
    out["dispatch-status"] = _finish(
        "dispatch-status",
        DispatchStatus.model_json_schema(mode="serialization"),
        CANONICAL_KEY,
        True,
    )
    out["audit"] = _finish(
        "audit",
        AuditRecord.model_json_schema(mode="serialization"),
        CANONICAL_KEY,
        True,
    )
    out["dead-letters"] = _finish(
        "dead-letters",
        DeadLetterHeaders.model_json_schema(by_alias=True, mode="validation"),
        "the original record's key, unchanged",
        True,
    )
    return out


def render(schema: dict[str, Any]) -> str:
    """The committed form: sorted keys, 2-space indent, trailing newline."""
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def expected_files() -> dict[str, str]:
    """File name -> content, exactly as ``schemas/`` must hold it."""
    return {f"{topic}.schema.json": render(s) for topic, s in build_schemas().items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="only check, exit 1 on drift")
    parser.add_argument("--out", type=Path, default=SCHEMA_DIR, help="output folder (schemas/)")
    args = parser.parse_args(argv)
    files = expected_files()
    out: Path = args.out
    stale = [
        name
        for name, text in files.items()
        if not (out / name).is_file() or (out / name).read_text(encoding="utf-8") != text
    ]
    extra = (
        sorted(p.name for p in out.glob("*.schema.json") if p.name not in files)
        if out.is_dir()
        else []
    )
    if args.check:
        for name in stale:
            print(f"out of date: {out / name}", file=sys.stderr)
        for name in extra:
            print(f"not generated (remove it?): {out / name}", file=sys.stderr)
        return 1 if stale or extra else 0
    out.mkdir(parents=True, exist_ok=True)
    for name in stale:
        (out / name).write_text(files[name], encoding="utf-8")
        print(f"wrote {out / name}")
    print(f"{len(files)} schemas, {len(stale)} updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
