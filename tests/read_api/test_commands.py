"""Every command the API publishes is a record the worker accepts (its own parser decides)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from counting import CountingConfig
from models.events import (
    ContactDelete,
    ContactListAdded,
    ContactListRemoved,
    ContactUpsert,
    UnsubscribeEvent,
    parse_record,
)
from read_api import commands
from tests.read_api.support import sample_snapshot


def _parse(topic: str, record: dict[str, object]) -> object:
    import orjson

    return parse_record(topic, orjson.dumps(record), datetime.now(UTC), CountingConfig())


def test_upsert_carries_only_the_fields_given() -> None:
    record = commands.upsert_record(
        "o", "c", {"name": "Ana", "email": None, "origin": {"type": "api"}}
    )
    event = _parse("contact", record)
    assert isinstance(event, ContactUpsert)
    assert event.model_fields_set >= {"name", "email", "origin"}
    assert "phone" not in event.model_fields_set
    assert event.name == "Ana" and event.email is None
    assert event.origin is not None and event.origin.label == "API"
    assert record["occurred_at"].endswith("+00:00")


@pytest.mark.parametrize(
    ("record", "kind"),
    [
        (commands.delete_record("o", "c"), ContactDelete),
        (commands.list_added_record("o", "c", "vip", "VIP"), ContactListAdded),
        (commands.list_added_record("o", "c", "vip", None), ContactListAdded),
        (commands.list_removed_record("o", "c", "vip"), ContactListRemoved),
    ],
)
def test_contact_commands_parse(record: dict[str, object], kind: type) -> None:
    assert isinstance(_parse("contact", record), kind)


def test_unsubscribe_parses() -> None:
    event = _parse("unsubscribe", commands.unsubscribe_record("o", "c", "whatsapp"))
    assert isinstance(event, UnsubscribeEvent) and event.channel == "whatsapp"


def test_every_command_gets_a_fresh_event_id() -> None:
    ids = {commands.delete_record("o", "c")["event_id"] for _ in range(100)}
    assert len(ids) == 100


def test_send_request_shape() -> None:
    record = commands.send_request_record(
        "o", "c", "sms", text="hi", template_id=None, variables={}, requested_by="ops"
    )
    assert set(record) == {
        "request_id",
        "org_id",
        "contact_id",
        "channel",
        "text",
        "template_id",
        "variables",
        "requested_by",
        "requested_at",
    }
    assert datetime.fromisoformat(record["requested_at"]).tzinfo is not None
    assert commands.contact_key("o", "c") == "o:c"


def test_sample_snapshot_matches_the_published_model() -> None:
    from models.snapshot import Snapshot

    Snapshot.model_validate(sample_snapshot("o", "c"))
