"""`counting.reading.read_record` against the contract's models (`parse_record`).

The worker reads records through `read_record`'s fast path; the models say what is valid. These
tests hold the two to the same verdicts: every record either gives the same event both ways
(the model made light with `lighten`) or is refused both ways with the same reason and code.
Hypothesis draws records field by field from valid, odd-but-valid and invalid values, so a
fast path that accepted what the model refuses, or read a value differently, fails here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from counting import CountingConfig
from counting.events import Click, Dispatch, Open, Unsubscribe, lighten
from counting.reading import plain_timestamp, read_plain, read_record
from models.events import CONTACT_MODELS, ENGAGEMENT_MODELS, RecordRejected, parse_record

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
CFG = CountingConfig()
ENGAGEMENT_TOPICS = tuple(ENGAGEMENT_MODELS)
MISSING = object()  # a field left out of the record


def verdict(read: Any, topic: str, raw: bytes) -> tuple[Any, ...]:
    try:
        event = read(topic, raw, NOW, CFG)
    except RecordRejected as rejected:
        return ("rejected", rejected.reason, rejected.code)
    if read is parse_record and not isinstance(event, CONTACT_MODELS):
        event = lighten(event)
    # `==` on datetimes ignores the zone: the counting core relies on the `UTC` singleton.
    assert event.occurred_at.tzinfo is UTC
    return ("event", type(event).__name__, event)


def same_verdict(topic: str, raw: bytes) -> tuple[Any, ...]:
    expected = verdict(parse_record, topic, raw)
    got = verdict(read_record, topic, raw)
    assert got == expected, (topic, raw)
    return got


# --------------------------------------------------------------------------- values drawn
def ids(most: int) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.sampled_from(["e-1", "org-1", "c 1", "{a}:b|c%/\\", "é-ü", "ид", "ab\u00a0cd"]),
        st.text(min_size=1, max_size=12),  # any character, forbidden ones included
        st.sampled_from(["", "a\x01b", "a\x7fb", "a\x85b", "a\u2028b", "a\u2029b", "a\nb"]),
        st.sampled_from(["x" * most, "x" * (most + 1), "é" * most, "é" * (most + 1)]),
        st.sampled_from([None, 7, 1.5, True, ["a"], {"a": 1}]),
    )


TIMESTAMPS = st.one_of(
    st.sampled_from(
        [
            "2026-06-01T11:00:00Z",
            "2026-06-01T11:00:00.5Z",
            "2026-06-01T11:00:00.123456Z",
            "2026-06-01T11:00:00.1234567Z",
            "2026-06-01T11:00:00.123456789Z",
            "2026-06-01T11:00:00+00:00",
            "2026-06-01T11:00:00-00:00",
            "2026-06-01T08:00:00-03:00",
            "2026-06-01T13:30:00.25+02:30",
            "2026-06-01T11:00:00+23:59",
            "2026-06-01T11:00:00-23:59",
            "2026-06-01T11:00:00+24:00",
            "2026-06-01T11:00:00+0200",
            "2026-06-01T11:00:00+02",
            "2026-06-01t11:00:00z",
            "2026-06-01 11:00:00Z",
            "2026-06-01T11:00Z",
            "2026-06-01T11:00:00",
            "2026-06-01",
            "2026-02-29T11:00:00Z",
            "2024-02-29T11:00:00Z",
            "2026-13-01T11:00:00Z",
            "2026-06-01T24:00:00Z",
            "2026-06-01T23:59:60Z",
            "0001-01-01T00:00:00Z",
            "2026-06-01T11:00:00,5Z",
            "2026-06-01T11:00:00.Z",
            "2026-06-01T11:00:00.12a456Z",
            "2026-06-01T1a:00:00Z",
            "2026-06-01T11:00:00+0a:00",
            "2026-06-01T11:00:00Z ",
            "\uff12\uff10\uff12\uff16-06-01T11:00:00Z",  # full-width digits
            "2099-06-01T11:00:00Z",  # in the future: refused as such
            "2026-06-01T12:04:59Z",  # within the default tolerance
            "1700000000",
            # fromisoformat takes offset minutes 60-99, RFC 3339 (and the models) do not
            "2026-06-01T11:00:00+01:60",
            "2026-06-01T11:00:00-00:99",
            "2026-06-01T11:00:00.12+00:60",
            # valid texts for instants a datetime cannot hold in UTC (before year 1, after 9999)
            "0001-01-01T00:00:00+01:00",
            "0001-01-01T00:00:00+00:60",
            "9999-12-31T23:59:59-01:00",
        ]
    ),
    st.from_regex(
        r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{0,9})?"
        r"([Zz]|[+-][0-9]{2}:?[0-9]{2})?\Z"
    ),
    st.sampled_from([None, 1700000000, 1.5, True, []]),
)

CHANNELS = st.sampled_from(["email", "sms", "whatsapp", "fax", "EMAIL", "", None, 3])
TEXTS = st.one_of(
    st.none(),
    st.text(max_size=8),
    st.sampled_from(["x" * 1024, "x" * 1025, "x" * 4096, "x" * 4097, 5, False, ["x"]]),
)
BOOLS = st.sampled_from([True, False, None, 0, 1, "true", "false"])


@st.composite
def records(draw: st.DrawFn) -> tuple[str, bytes]:
    topic = draw(st.sampled_from(ENGAGEMENT_TOPICS))
    fields: dict[str, st.SearchStrategy[Any]] = {
        "event_id": ids(128),
        "org_id": ids(64),
        "contact_id": ids(128),
        "occurred_at": TIMESTAMPS,
        "channel": CHANNELS,
        "message_id": ids(128),
        "dispatch_kind": st.sampled_from(["single", "automated", "Single", "", None, 1]),
        "campaign_id": ids(128),
        "machine": BOOLS,
        "bot": BOOLS,
        "user_agent": TEXTS,
        "url": TEXTS,
        "kind": st.sampled_from(["hard", "soft", "HARD", None, 0]),
        "reason": TEXTS,
        "extra": st.sampled_from(["x", 1, None]),
    }
    data: dict[str, Any] = {}
    for name, values in fields.items():
        # Mostly a value, sometimes absent; the usual fields mostly plain, so that most
        # records are valid and the fast path's acceptance is what is tested.
        value = draw(st.one_of(st.just(MISSING), values)) if draw(st.booleans()) else MISSING
        if value is MISSING and name in ("event_id", "org_id", "contact_id", "message_id"):
            value = draw(st.sampled_from(["id-1", "id 2", "é3"]))
        if value is MISSING and name == "occurred_at":
            value = "2026-06-01T11:00:00.5Z"
        if value is MISSING and name == "channel":
            value = "email"
        if value is MISSING and name in ("dispatch_kind", "kind") and draw(st.booleans()):
            value = "single" if name == "dispatch_kind" else "hard"
        if value is not MISSING:
            data[name] = value
    return topic, orjson.dumps(data)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records())
def test_read_record_and_the_models_agree_on_every_record(record: tuple[str, bytes]) -> None:
    same_verdict(*record)


@settings(max_examples=600, deadline=None)
@given(TIMESTAMPS)
def test_a_plain_timestamp_is_the_models_instant(value: Any) -> None:
    """When the fast path reads a timestamp, the model reads the same instant (and UTC)."""
    parsed = plain_timestamp(value)
    data = {
        "event_id": "e",
        "org_id": "o",
        "contact_id": "c",
        "channel": "sms",
        "message_id": "m",
        "occurred_at": value,
    }
    try:
        event = parse_record("delivery", orjson.dumps(data), datetime(2100, 1, 1, tzinfo=UTC), CFG)
    except RecordRejected as rejected:
        if rejected.code != "future_timestamp":  # a valid instant, just too late
            assert parsed is None, value
        return
    if parsed is not None:
        assert parsed == event.occurred_at and parsed.tzinfo is UTC, value


# ------------------------------------------------------------ the fast path takes the usual
USUAL = {
    "event_id": "0793cc1052614d2f8a958b752b3c4f14",
    "org_id": "org-5",
    "contact_id": "contact-5",
    "occurred_at": "2026-06-01T11:00:00.684633Z",
    "channel": "email",
    "message_id": "d23f0824-128b-2f33-0c5c-7fd0a6a3a450",
}


@pytest.mark.parametrize(
    ("topic", "extra"),
    [
        ("dispatch", {"dispatch_kind": "single", "campaign_id": "camp-1"}),
        ("dispatch", {"dispatch_kind": "automated"}),
        ("delivery", {}),
        ("open", {"machine": True, "user_agent": "Mozilla/5.0"}),
        ("open", {}),
        ("click", {"url": "https://x.test/a", "bot": False}),
        ("reply", {}),
        ("bounce", {"kind": "soft", "reason": "mailbox full"}),
        ("complaint", {}),
        ("unsubscribe", {}),
    ],
)
def test_usual_records_take_the_fast_path(topic: str, extra: dict[str, Any]) -> None:
    """The records producers send are read without the models (or the speed-up is gone)."""
    data = {**USUAL, **extra}
    fast = read_plain(topic, data, CFG.channels)
    assert fast is not None
    assert same_verdict(topic, orjson.dumps(data)) == ("event", type(fast).__name__, fast)


def test_the_fast_path_reads_the_fields_the_rules_use() -> None:
    dispatch = read_plain("dispatch", {**USUAL, "dispatch_kind": "automated"}, CFG.channels)
    assert isinstance(dispatch, Dispatch) and dispatch.dispatch_kind == "automated"
    assert dispatch.occurred_at == datetime(2026, 6, 1, 11, 0, 0, 684633, tzinfo=UTC)
    opened = read_plain("open", {**USUAL, "machine": True}, CFG.channels)
    assert isinstance(opened, Open) and opened.machine is True
    click = read_plain("click", {**USUAL, "bot": True}, CFG.channels)
    assert isinstance(click, Click) and click.bot is True
    unsub = read_plain("unsubscribe", {**USUAL, "message_id": None}, CFG.channels)
    assert isinstance(unsub, Unsubscribe) and unsub.channel == "email"


@pytest.mark.parametrize(
    ("topic", "change"),
    [
        ("delivery", {"event_id": "a\u00a0b"}),  # allowed, not printable: the model decides
        ("delivery", {"occurred_at": "2026-06-01 11:00:00Z"}),  # another layout
        ("delivery", {"occurred_at": "2026-06-01T11:00:00.1234567Z"}),  # 7 digits
        ("delivery", {"org_id": "o\x01"}),
        ("delivery", {"channel": "fax"}),
        ("open", {"machine": "true"}),
        ("dispatch", {"dispatch_kind": "bulk"}),
        ("bounce", {}),  # kind is required
        ("contact", {"type": "delete"}),  # the contact topic is always the models'
        ("delivery", {"occurred_at": "2026-06-01T11:00:00+01:60"}),  # offset minutes 60
        ("delivery", {"occurred_at": "0001-01-01T00:00:00+01:00"}),  # before year 1 in UTC
    ],
)
def test_doubtful_records_are_left_to_the_models(topic: str, change: dict[str, Any]) -> None:
    data = {**USUAL, **change}
    assert read_plain(topic, data, CFG.channels) is None
    same_verdict(topic, orjson.dumps(data))


def test_refusals_are_the_models_word_for_word() -> None:
    future = {**USUAL, "occurred_at": "2026-06-02T11:00:00Z"}
    assert same_verdict("delivery", orjson.dumps(future))[2] == "future_timestamp"
    oversize = {**USUAL, "user_agent": "x" * 1000}
    small = CountingConfig(max_record_bytes=512)
    with pytest.raises(RecordRejected) as info:
        read_record("open", orjson.dumps(oversize), NOW, small)
    assert info.value.code == "oversize"
    assert same_verdict("delivery", b"{not json")[2] == "not_json"
    assert same_verdict("delivery", b"[1, 2]")[2] == "not_json"
    assert same_verdict("nonsense", orjson.dumps(USUAL))[2] == "unknown_topic"
    no_message = {k: v for k, v in USUAL.items() if k != "message_id"}
    assert same_verdict("delivery", orjson.dumps(no_message))[2] == "missing_field"
