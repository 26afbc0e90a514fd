"""A validated event in a few bytes (`counting.event_codec`): what the ingest writes is the
event the worker's own reading gives, field for field, for every engagement topic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from counting import CountingConfig
from counting import event_codec as ec
from counting.events import (
    Bounce,
    Click,
    Complaint,
    Delivery,
    Dispatch,
    LightEvent,
    Open,
    Reply,
    Unsubscribe,
)
from counting.reading import _TOPIC_CODES, read_plain, read_record, read_validated, validated

CFG = CountingConfig()
AT = datetime(2026, 5, 30, 10, 0, 0, 123456, tzinfo=UTC)
AT_TEXT = "2026-05-30T10:00:00.123456Z"
BASE = ("evt-1", "org-1", "c-1", AT, "email")

EVERY_KIND: list[tuple[int, LightEvent]] = [
    (ec.DISPATCH, Dispatch(*BASE, "m-1", "single")),
    (ec.DELIVERY, Delivery(*BASE, "m-1")),
    (ec.OPEN, Open(*BASE, "m-1", True)),
    (ec.OPEN, Open(*BASE, "m-1", False)),
    (ec.CLICK, Click(*BASE, "m-1", True)),
    (ec.CLICK, Click(*BASE, "m-1", False)),
    (ec.REPLY, Reply(*BASE, "m-1")),
    (ec.BOUNCE, Bounce(*BASE, "m-1", "hard_bounced")),
    (ec.COMPLAINT, Complaint(*BASE, "m-1")),
    (ec.UNSUBSCRIBE, Unsubscribe(*BASE)),
]


@pytest.mark.parametrize(("code", "event"), EVERY_KIND, ids=repr)
def test_every_kind_of_event_comes_back_equal(code: int, event: LightEvent) -> None:
    back = ec.decode(ec.encode(code, event, AT_TEXT))
    assert type(back) is type(event)
    assert back == event
    assert back.occurred_at.tzinfo is UTC


def test_the_topic_codes_are_the_readers() -> None:
    assert _TOPIC_CODES == {
        "dispatch": ec.DISPATCH,
        "delivery": ec.DELIVERY,
        "open": ec.OPEN,
        "click": ec.CLICK,
        "reply": ec.REPLY,
        "bounce": ec.BOUNCE,
        "complaint": ec.COMPLAINT,
        "unsubscribe": ec.UNSUBSCRIBE,
    }


ids = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x2FFF, exclude_categories=("Cs",)),
    min_size=1,
    max_size=40,
)


@given(
    eid=ids,
    org=ids,
    contact=ids,
    mid=ids,
    micros=st.integers(min_value=0, max_value=2**50),
    topic=st.sampled_from(sorted(_TOPIC_CODES)),
)
def test_what_the_ingest_validates_is_what_the_worker_reads(
    eid: str, org: str, contact: str, mid: str, micros: int, topic: str
) -> None:
    at = datetime(1990, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)
    record: dict[str, object] = {
        "event_id": eid,
        "org_id": org,
        "contact_id": contact,
        "occurred_at": at.isoformat().replace("+00:00", "Z"),
        "channel": "sms",
        "message_id": mid,
        "dispatch_kind": "single",
        "kind": "hard_bounced",
        "machine": True,
        "bot": False,
    }
    encoded = validated(topic, record, CFG.channels)
    read = read_plain(topic, record, CFG.channels)
    if read is None:  # the fast path leaves it to the models: the ingest sends it as read
        assert encoded is None
        return
    assert encoded is not None
    now = at + timedelta(hours=1)
    assert read_validated(encoded, now, CFG) == read
    assert read_validated(encoded, now, CFG) == read_record(topic, orjson.dumps(record), now, CFG)


def test_an_event_past_the_workers_time_limit_is_left_to_the_models() -> None:
    encoded = ec.encode(ec.DELIVERY, Delivery(*BASE, "m-1"), AT_TEXT)
    assert read_validated(encoded, AT + timedelta(hours=1), CFG) is not None
    assert read_validated(encoded, AT - timedelta(hours=1), CFG) is None


@pytest.mark.parametrize(
    "damaged",
    [
        b"",
        b"\x01",
        b"\x09\x00" + ec.encode(ec.DELIVERY, Delivery(*BASE, "m-1"), AT_TEXT)[2:],  # no such topic
        ec.encode(ec.DELIVERY, Delivery(*BASE, "m-1"), AT_TEXT).rsplit(b"\x00", 1)[
            0
        ],  # a text short
        ec.encode(ec.DELIVERY, Delivery(*BASE, "m-1"), AT_TEXT) + b"\x00x",  # a text too many
        ec.encode(ec.DELIVERY, Delivery(*BASE, "m-1"), "yesterday"),  # not a time
        ec.encode(ec.DELIVERY, Delivery(*BASE, "m-1"), AT_TEXT)[:-1] + b"\xff",  # not UTF-8
    ],
    ids=["empty", "head only", "topic", "cut short", "trailing text", "time", "utf-8"],
)
def test_damaged_bytes_are_refused_and_the_worker_reads_the_record(damaged: bytes) -> None:
    with pytest.raises(ec.EventBytesError):
        ec.decode(damaged)
    assert read_validated(damaged, AT + timedelta(hours=1), CFG) is None


def test_a_time_with_an_offset_comes_back_in_utc_as_the_models_read_it() -> None:
    record = {
        "event_id": "e1",
        "org_id": "o",
        "contact_id": "c",
        "occurred_at": "2026-05-30T12:30:00.5+02:30",
        "channel": "email",
        "message_id": "m",
    }
    encoded = validated("delivery", record, CFG.channels)
    assert encoded is not None
    back = read_validated(encoded, AT + timedelta(days=1), CFG)
    assert back is not None and back.occurred_at.tzinfo is UTC
    assert back == read_record("delivery", orjson.dumps(record), AT + timedelta(days=1), CFG)
