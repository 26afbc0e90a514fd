"""Envelope framing and the ingest's routing, without a broker (issue 11)."""

from __future__ import annotations

import orjson
import pytest
from aiokafka import ConsumerRecord, TopicPartition
from hypothesis import given, settings
from hypothesis import strategies as st

from engagement_monitor.keyspace import record_key, state_key
from streams import envelope
from streams.envelope import KIND_RECORD, KIND_TICK, Entry, EnvelopeError
from streams.ingest import frame, route
from streams.partitioning import contact_partition, partition_for, state_partition

headers = st.lists(st.tuples(st.text(max_size=20), st.binary(max_size=40)), max_size=3)
entries = st.builds(
    Entry,
    kind=st.sampled_from([KIND_RECORD, KIND_TICK, envelope.KIND_FORWARDED]),
    topic=st.text(max_size=40),
    partition=st.integers(-1, 2**31 - 1),
    offset=st.integers(-1, 2**63 - 1),
    key=st.none() | st.binary(max_size=64),
    value=st.binary(max_size=300),
    headers=headers,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(entries, max_size=20))
def test_an_envelope_gives_back_every_entry_in_order(items: list[Entry]) -> None:
    assert envelope.decode(envelope.encode(items)) == items


@settings(max_examples=200, deadline=None)
@given(st.lists(entries, min_size=1, max_size=5), st.data())
def test_a_truncated_or_padded_envelope_is_refused(items: list[Entry], data: st.DataObject) -> None:
    raw = envelope.encode(items)
    cut = data.draw(st.integers(4, len(raw) - 1))
    with pytest.raises(EnvelopeError):
        envelope.decode(raw[:cut])
    with pytest.raises(EnvelopeError):
        envelope.decode(raw + b"\x00")


def test_something_else_is_not_an_envelope() -> None:
    with pytest.raises(EnvelopeError, match="not an envelope"):
        envelope.decode(b'{"event_id": "e"}')


def test_the_writer_counts_its_size() -> None:
    writer = envelope.EnvelopeWriter()
    writer.add(KIND_RECORD, "engagement.open", 3, 7, b"k", b"v" * 100, [("h", b"x")])
    raw = writer.finish()
    assert writer.count == 1 and abs(writer.size - len(raw)) <= 16


# ----------------------------------------------------------------------------- routing
ids = st.text(min_size=1, max_size=20)


@settings(max_examples=300, deadline=None)
@given(ids, ids, st.integers(1, 64), st.integers(0, 63))
def test_route_is_the_tables_partition_of_the_ids_in_the_value(
    org: str, contact: str, partitions: int, source: int
) -> None:
    value = orjson.dumps({"org_id": org, "contact_id": contact, "event_id": "e"})
    owner = route(value, source, partitions)
    assert owner == contact_partition(org, contact, partitions)
    assert owner == state_partition(state_key(org, contact), partitions)
    assert owner == partition_for(record_key(org, contact), partitions)


@pytest.mark.parametrize(
    "value", [b"not json", b"[1]", b'{"org_id": 1, "contact_id": "c"}', b'{"org_id": "o"}', b""]
)
def test_a_record_without_readable_ids_stays_on_its_source_partition(value: bytes) -> None:
    assert route(value, 13, 8) == 5


def _record(topic: str, partition: int, offset: int, value: bytes) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic, partition, offset, 0, 0, b"key", value, None, 3, len(value), [("h", b"1")]
    )


def test_frame_groups_by_owner_splits_large_envelopes_and_commits_past_the_fetch() -> None:
    partitions = 4
    fetched: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]] = {}
    sent: list[tuple[str, int, int]] = []
    for p in range(2):
        tp = TopicPartition("engagement.open", p)
        fetched[tp] = []
        for i in range(50):
            value = orjson.dumps({"org_id": "o", "contact_id": f"c{i}", "pad": "x" * 2000})
            fetched[tp].append(_record(tp.topic, p, 100 + i, value))
            sent.append((tp.topic, p, 100 + i))
    fetched[TopicPartition("engagement.open", 2)] = [
        _record("engagement.open", 2, 9, b"x" * 70_000)
    ]

    routed = frame(fetched, partitions, max_record_bytes=65536, max_envelope_bytes=20_000)

    assert [r.offset for r in routed.oversize] == [9]
    assert routed.offsets == {
        TopicPartition("engagement.open", 0): 150,
        TopicPartition("engagement.open", 1): 150,
        TopicPartition("engagement.open", 2): 10,
    }
    seen: list[tuple[str, int, int]] = []
    for partition, raw, count in routed.envelopes:
        assert len(raw) <= 20_000
        decoded = envelope.decode(raw)
        assert len(decoded) == count
        for entry in decoded:
            ids = orjson.loads(entry.value)
            assert partition == contact_partition(ids["org_id"], ids["contact_id"], partitions)
            assert entry.key == b"key" and entry.headers == [("h", b"1")]
            seen.append((entry.topic, entry.partition, entry.offset))
    assert sorted(seen) == sorted(sent)  # every record exactly once
    assert routed.records == 101


# ------------------------------------------------------------------ events read by the ingest
@settings(max_examples=200, deadline=None)
@given(st.lists(entries, max_size=10), st.lists(st.binary(min_size=1, max_size=60), max_size=10))
def test_event_entries_keep_their_event_apart_from_their_headers(
    items: list[Entry], events: list[bytes]
) -> None:
    writer = envelope.EnvelopeWriter()
    for item, event in zip(items, events, strict=False):
        writer.add(KIND_RECORD, item.topic, 0, 1, item.key, item.value, item.headers, event)
    n = min(len(items), len(events))
    for item in items[n:]:
        writer.add_entry(item)
    decoded = envelope.decode(writer.finish())
    assert [e.kind for e in decoded[:n]] == [envelope.KIND_EVENT] * n
    assert [e.event for e in decoded[:n]] == events[:n]
    assert [e.headers for e in decoded[:n]] == [item.headers for item in items[:n]]
    assert [e.value for e in decoded[:n]] == [item.value for item in items[:n]]
    assert all(e.event is None for e in decoded[n:])
    # and an entry read back is written again as it was (forwarding, say)
    again = envelope.decode(envelope.encode(decoded))
    assert [(e.kind, e.event, e.headers) for e in again] == [
        (e.kind, e.event, e.headers) for e in decoded
    ]


def test_an_earlier_release_reads_an_event_entry_as_its_record() -> None:
    """Its decoder knew no KIND_EVENT: the entry's value and headers are all it reads (the
    event is one more header, with an empty name, after the record's own)."""
    writer = envelope.EnvelopeWriter()
    writer.add(KIND_RECORD, "engagement.open", 3, 7, b"k", b'{"a": 1}', [("h", b"1")], b"EV")
    raw = writer.finish()
    decoded = envelope._decode(memoryview(raw.replace(b"\x03", b"\x00", 1)))  # as kind 0
    assert decoded[0].value == b'{"a": 1}' and decoded[0].headers == [("h", b"1"), ("", b"EV")]


def test_an_event_entry_without_its_event_is_refused() -> None:
    raw = envelope.encode([Entry(envelope.KIND_EVENT, "t", 0, 0, None, b"v", [("h", b"1")])])
    with pytest.raises(EnvelopeError, match="without its event"):
        envelope.decode(raw)


def test_frame_sends_the_events_it_reads_beside_their_records() -> None:
    from datetime import UTC, datetime

    from counting import CountingConfig
    from counting.events import unpack_event
    from counting.reading import read_record
    from streams.ingest import EventReader
    from streams.topics import TopicNames

    names = TopicNames("engagement.")
    now = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    good = {
        "event_id": "e1",
        "org_id": "o",
        "contact_id": "c",
        "occurred_at": "2026-06-01T11:00:00Z",
        "channel": "email",
        "message_id": "m1",
    }
    values = [
        ("engagement.open", orjson.dumps(good)),
        ("engagement.open", orjson.dumps({**good, "channel": "fax"})),  # the worker refuses it
        ("engagement.contact", orjson.dumps({**good, "type": "upsert"})),
        ("engagement.open", b"not json"),
    ]
    fetched = {
        TopicPartition(topic, i): [_record(topic, i, i, value)]
        for i, (topic, value) in enumerate(values)
    }
    cfg = CountingConfig()
    routed = frame(fetched, 8, 65536, 1 << 20, EventReader(names, cfg), now)
    decoded = [e for _, raw, _ in routed.envelopes for e in envelope.decode(raw)]
    by_offset = {e.offset: e for e in decoded}
    assert len(by_offset) == 4
    read = by_offset[0]
    assert read.kind == envelope.KIND_EVENT and read.event is not None
    assert unpack_event(read.event) == read_record("open", read.value, now, cfg)
    assert read.headers == [("h", b"1")] and read.key == b"key"
    assert [by_offset[i].kind for i in (1, 2, 3)] == [KIND_RECORD] * 3
    assert all(by_offset[i].event is None for i in (1, 2, 3))
