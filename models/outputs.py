"""Records the processor publishes (SPEC §4)."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from models.events import RecordRejected
from models.tiers import Tier


class TierChange(BaseModel):
    """One scope's tier moved; ``channel`` None is the overall engagement."""

    model_config = ConfigDict(extra="forbid")

    org_id: str
    contact_id: str
    channel: str | None
    previous_tier: Tier | None
    tier: Tier | None
    rate: float | None
    changed_at: datetime
    cause: Literal["event", "expiry"]


class Actor(BaseModel):
    """Who asked: the token's name and role (never the token itself)."""

    name: str
    role: Literal["agent", "operator", "admin"]


class AuditRecord(BaseModel):
    """Published by the API for every write it accepted, after the command itself."""

    at: datetime
    org_id: str
    contact_id: str
    actor: Actor
    action: Literal["edit", "delete", "list_added", "list_removed", "unsubscribe", "send_message"]
    command_topic: str
    command_id: str
    idempotency_key: str | None


class DispatchStatus(BaseModel):
    """Told to the messaging pipeline so its dispatch report shows the Sending Error status."""

    model_config = ConfigDict(extra="forbid")

    org_id: str
    contact_id: str
    channel: str
    message_id: str
    status: Literal["sending_error"] = "sending_error"


class DeadLetter(BaseModel):
    """A record that could not be used, kept byte-for-byte so it can be fixed and replayed.

    ``value`` is base64 of the exact bytes received: JSON text cannot carry arbitrary bytes
    (the record may not even be UTF-8), and base64 never alters them. ``value_text`` is the
    same bytes decoded as UTF-8 when they are valid UTF-8, for people reading the topic.
    """

    model_config = ConfigDict(extra="forbid")

    source_topic: str
    partition: int
    offset: int
    reason: str
    code: str
    key: str | None
    value: str
    value_encoding: Literal["base64"] = "base64"
    value_text: str | None
    received_at: datetime

    @classmethod
    def from_record(
        cls,
        *,
        source_topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        rejected: RecordRejected,
        received_at: datetime,
    ) -> DeadLetter:
        raw = value or b""
        try:
            text: str | None = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        return cls(
            source_topic=source_topic,
            partition=partition,
            offset=offset,
            reason=rejected.reason,
            code=rejected.code,
            key=None if key is None else key.decode("utf-8", "backslashreplace"),
            value=base64.b64encode(raw).decode("ascii"),
            value_text=text,
            received_at=received_at,
        )

    def raw_value(self) -> bytes:
        return base64.b64decode(self.value)
