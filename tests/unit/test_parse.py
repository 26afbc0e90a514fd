from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from counting import CountingConfig
from models.events import (
    ClickEvent,
    ContactUpsert,
    DispatchEvent,
    RecordRejected,
    UnsubscribeEvent,
    parse_record,
)
from models.origin import CsvOrigin
from models.outputs import DeadLetter

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
CFG = CountingConfig()


def record(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "event_id": "e-1",
        "org_id": "org-1",
        "contact_id": "c-1",
        "channel": "email",
        "message_id": "m-1",
        "occurred_at": "2026-06-01T11:00:00Z",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def raw(**overrides: Any) -> bytes:
    return orjson.dumps(record(**overrides))


def rejected(topic: str, data: bytes, cfg: CountingConfig = CFG) -> RecordRejected:
    with pytest.raises(RecordRejected) as info:
        parse_record(topic, data, NOW, cfg)
    return info.value


def test_valid_records_parse_and_ignore_unknown_fields() -> None:
    event = parse_record("dispatch", raw(dispatch_kind="automated", extra="x"), NOW, CFG)
    assert isinstance(event, DispatchEvent)
    assert event.dispatch_kind == "automated" and event.campaign_id is None
    click = parse_record("click", raw(url="https://x.test"), NOW, CFG)
    assert isinstance(click, ClickEvent) and click.url == "https://x.test"
    unsub = parse_record("unsubscribe", raw(message_id=None), NOW, CFG)
    assert isinstance(unsub, UnsubscribeEvent)


def test_offsets_are_normalised_to_utc() -> None:
    event = parse_record("open", raw(occurred_at="2026-06-01T08:00:00-03:00"), NOW, CFG)
    assert event.occurred_at == datetime(2026, 6, 1, 11, 0, tzinfo=UTC)
    assert event.occurred_at.utcoffset() is not None


def test_contact_records_by_type() -> None:
    data = orjson.dumps(
        {
            "type": "upsert",
            "event_id": "e",
            "org_id": "o",
            "contact_id": "c",
            "occurred_at": "2026-06-01T11:00:00+00:00",
            "name": "Ana",
            "phone": "+5511999990000",
            "origin": {"type": "csv", "file": "leads.csv"},
        }
    )
    event = parse_record("contact", data, NOW, CFG)
    assert isinstance(event, ContactUpsert)
    assert isinstance(event.origin, CsvOrigin) and event.origin.label == "CSV Import - leads.csv"
    assert event.model_fields_set >= {"name", "phone", "origin"}


def test_oversize() -> None:
    cfg = CountingConfig(max_record_bytes=100)
    big = raw(pad="x" * 200)
    error = rejected("open", big, cfg)
    assert error.code == "oversize"
    assert error.reason == f"oversize: {len(big)} bytes > 100"


def test_not_json() -> None:
    error = rejected("open", b"{not json")
    assert error.code == "not_json" and error.reason.startswith("not JSON: ")
    error = rejected("open", b"[1, 2]")
    assert error.code == "not_json" and "object" in error.reason
    assert rejected("open", b"\xff\xfe").code == "not_json"


def test_unknown_topic() -> None:
    error = rejected("opens", raw())
    assert error.code == "unknown_topic" and "'opens'" in error.reason


def test_missing_field() -> None:
    error = rejected("open", raw(message_id=None))
    assert (error.code, error.reason) == ("missing_field", "missing field message_id")
    error = rejected("dispatch", raw())
    assert (error.code, error.reason) == ("missing_field", "missing field dispatch_kind")
    contact = orjson.dumps({k: v for k, v in record().items() if k != "channel"})
    error = rejected("contact", contact)
    assert (error.code, error.reason) == ("missing_field", "missing field type")


def test_unknown_channel_names_the_configured_set() -> None:
    error = rejected("open", raw(channel="fax"))
    assert error.code == "unknown_channel"
    assert error.reason == "channel: 'fax' is not one of sms, email, whatsapp"
    cfg = CountingConfig(channels=("sms", "email", "whatsapp", "fax"))
    assert parse_record("open", raw(channel="fax"), NOW, cfg).channel == "fax"


@pytest.mark.parametrize(
    ("value", "detail"),
    [
        ("2026-06-01T11:00:00", "has no UTC offset"),
        ("2026-13-01T11:00:00Z", "not an RFC 3339 timestamp"),
        ("yesterday", "not an RFC 3339 timestamp"),
        (1780000000, "not an RFC 3339 timestamp"),
        ("1780000000", "not an RFC 3339 timestamp"),
    ],
)
def test_bad_timestamp(value: Any, detail: str) -> None:
    error = rejected("open", raw(occurred_at=value))
    assert error.code == "bad_timestamp"
    assert error.reason == f"occurred_at: {detail} ({value})"


def test_future_timestamp() -> None:
    error = rejected("open", raw(occurred_at="2030-01-01T00:00:00Z"))
    assert error.code == "future_timestamp"
    assert error.reason == "occurred_at: more than 5 minutes in the future (2030-01-01T00:00:00Z)"
    # within the tolerance is fine
    assert parse_record("open", raw(occurred_at="2026-06-01T12:04:59Z"), NOW, CFG)


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"event_id": ""}, "event_id: string should have at least 1 character ()"),
        ({"org_id": "o" * 65}, "org_id: string should have at most 64 characters"),
        (
            {"dispatch_kind": "bulk"},
            "dispatch_kind: input should be 'single' or 'automated' (bulk)",
        ),
        ({"message_id": 5}, "message_id: input should be a valid string (5)"),
    ],
)
def test_invalid_field(overrides: dict[str, Any], reason: str) -> None:
    error = rejected("dispatch", raw(**({"dispatch_kind": "single"} | overrides)))
    assert error.code == "invalid_field"
    assert error.reason.startswith(reason)


def test_invalid_contact_fields_name_the_field() -> None:
    base = {
        "event_id": "e",
        "org_id": "o",
        "contact_id": "c",
        "occurred_at": "2026-06-01T11:00:00Z",
    }
    error = rejected("contact", orjson.dumps(base | {"type": "upsert", "phone": "11 9999"}))
    assert error.code == "invalid_field"
    assert error.reason.startswith("phone: not an E.164 phone number")
    error = rejected("contact", orjson.dumps(base | {"type": "upsert", "origin": {"type": "csv"}}))
    assert (error.code, error.reason) == ("missing_field", "missing field origin.file")
    error = rejected("contact", orjson.dumps(base | {"type": "merge"}))
    assert error.code == "invalid_field" and error.reason.startswith("type: 'merge' is not one of")
    error = rejected("contact", orjson.dumps(base | {"type": "subscribe", "channel": "fax"}))
    assert error.code == "unknown_channel"


def test_dead_letter_keeps_the_bytes_unchanged() -> None:
    value = b"\xff not utf-8 {"
    error = rejected("open", value)
    letter = DeadLetter.from_record(
        source_topic="engagement.open",
        partition=3,
        offset=42,
        key=b"org:c",
        value=value,
        rejected=error,
        received_at=NOW,
    )
    assert letter.raw_value() == value
    assert letter.value_text is None and letter.key == "org:c"
    assert letter.code == "not_json" and letter.reason == error.reason


@pytest.mark.parametrize(
    "value", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "2026-06-01T11:00:00+01:60"]
)
def test_timestamps_no_datetime_holds_in_utc_are_refused_not_a_crash(value: str) -> None:
    """Valid-looking texts whose instant falls outside year 1..9999 in UTC (or whose offset is
    not one) are dead letters with a reason, never an exception that stops the agent."""
    problem = rejected("delivery", raw(occurred_at=value))
    assert problem.code == "bad_timestamp" and "occurred_at" in problem.reason
