"""The events the ingest reads travel in wire form (`counting.events.pack_event`), and the
worker counts them without reading their JSON again (issue 11). What makes that exact: the
ingest sends an event only when `read_record` (the worker's reading) gives that very event
for its record, and the wire form gives it back field for field, time zone included."""

from __future__ import annotations

import contextlib
import struct
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from counting import CountingConfig
from counting.events import (
    WIRE_VERSION,
    Click,
    Dispatch,
    LightEvent,
    Open,
    Unsubscribe,
    WireError,
    pack_event,
    unpack_event,
)
from counting.reading import read_record
from models.events import CONTACT_MODELS, RecordRejected, parse_limits
from streams.ingest import EventReader
from streams.topics import TopicNames
from tests.unit.test_reading import records

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
CFG = CountingConfig()
NAMES = TopicNames("engagement.")
READER = EventReader(NAMES, CFG)
LATEST = parse_limits(CFG, NOW).latest


def _worker_reads(topic: str, raw: bytes) -> Any:
    try:
        return read_record(topic, raw, NOW, CFG)
    except RecordRejected as rejected:
        return rejected


def _ingest_reads(topic: str, raw: bytes) -> LightEvent | None:
    data = orjson.loads(raw)
    packed = READER.read(NAMES.full(topic), data, LATEST) if isinstance(data, dict) else None
    return None if packed is None else unpack_event(packed)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records())
def test_the_ingest_sends_an_event_only_when_the_worker_reads_that_very_event(
    record: tuple[str, bytes],
) -> None:
    topic, raw = record
    sent = _ingest_reads(topic, raw)
    read = _worker_reads(topic, raw)
    if sent is None:
        return  # sent as read: the worker reads, counts or refuses it as before
    assert not isinstance(read, RecordRejected), (
        f"the ingest passed what the worker refuses: {raw!r}"
    )
    assert type(sent) is type(read) and sent.fields() == read.fields()
    assert sent.occurred_at.tzinfo is UTC and read.occurred_at.tzinfo is UTC


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records())
def test_every_event_read_comes_back_from_its_wire_form_as_it_was(
    record: tuple[str, bytes],
) -> None:
    read = _worker_reads(*record)
    if isinstance(read, (RecordRejected, *CONTACT_MODELS)):
        return
    back = unpack_event(pack_event(read))
    assert type(back) is type(read) and back.fields() == read.fields() and back == read


def _plain(topic: str, **fields: Any) -> bytes:
    data = {
        "event_id": "e-1",
        "org_id": "org",
        "contact_id": "c-1",
        "occurred_at": "2026-06-01T11:00:00.000001Z",
        "channel": "email",
        "message_id": "9f0c1a7e-3c2b-4b7e-9a51-0d7f3c2e1b4a",
        **fields,
    }
    return orjson.dumps({k: v for k, v in data.items() if v is not None})


@pytest.mark.parametrize(
    ("topic", "fields", "expected"),
    [
        ("dispatch", {"dispatch_kind": "automated"}, Dispatch),
        ("open", {"machine": True}, Open),
        ("click", {"bot": True}, Click),
        ("unsubscribe", {"message_id": None}, Unsubscribe),
    ],
)
def test_usual_records_travel_read(topic: str, fields: dict[str, Any], expected: type) -> None:
    sent = _ingest_reads(topic, _plain(topic, **fields))
    assert isinstance(sent, expected)
    assert sent == _worker_reads(topic, _plain(topic, **fields))


@pytest.mark.parametrize(
    ("topic", "raw"),
    [
        ("contact", _plain("contact", type="upsert")),  # the contact topic: the models' path
        ("open", _plain("open", channel="fax")),  # refused: the worker dead-letters it
        ("open", _plain("open", occurred_at="2026-06-01T11:00:00+05:30:00")),  # doubtful
        ("open", _plain("open", occurred_at="2026-06-01T12:20:00Z")),  # past the tolerance now
    ],
)
def test_other_records_travel_as_read(topic: str, raw: bytes) -> None:
    assert _ingest_reads(topic, raw) is None


def test_a_record_of_a_topic_the_ingest_does_not_read_travels_as_read() -> None:
    data = orjson.loads(_plain("open"))
    assert READER.read("other.open", data, LATEST) is None


def test_times_far_from_the_epoch_and_any_text_come_back() -> None:
    for at in (datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, 59, 999999, UTC)):
        event = Open("é🙂" * 30, "o:%", "c|d", at, "whatsapp", "m" * 128, False)
        assert unpack_event(pack_event(event)) == event
    near = NOW - timedelta(microseconds=1)
    assert unpack_event(pack_event(Unsubscribe("e", "o", "c", near, "sms"))).occurred_at == near


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x01\x02",
        struct.pack(">BBBqHHHHHH", WIRE_VERSION + 1, 0, 0, 0, 0, 0, 0, 0, 0, 0),  # a later form
        struct.pack(">BBBqHHHHHH", WIRE_VERSION, 8, 0, 0, 0, 0, 0, 0, 0, 0),  # no such type
        struct.pack(">BBBqHHHHHH", WIRE_VERSION, 1, 0, 0, 1, 0, 0, 0, 0, 0),  # cut short
        struct.pack(">BBBqHHHHHH", WIRE_VERSION, 1, 0, 0, 1, 0, 0, 0, 0, 0) + b"\xff",  # not UTF-8
        pack_event(Unsubscribe("e", "o", "c", NOW, "sms")) + b"x",  # padded
    ],
)
def test_bytes_that_are_not_a_packed_event_are_refused(data: bytes) -> None:
    with pytest.raises(WireError):
        unpack_event(data)


@given(st.binary(max_size=80))
def test_no_bytes_make_unpacking_fail_otherwise(data: bytes) -> None:
    with contextlib.suppress(WireError):
        unpack_event(data)
