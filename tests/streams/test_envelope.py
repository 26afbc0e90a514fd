"""Envelope framing and the ingest's routing, without a broker (issue 11)."""

from __future__ import annotations

import orjson
import pytest
from aiokafka import ConsumerRecord, TopicPartition
from hypothesis import given, settings
from hypothesis import strategies as st

from counting import CountingConfig, event_codec
from counting.reading import read_plain
from engagement_monitor.keyspace import record_key, state_key
from streams import envelope
from streams.envelope import KIND_RECORD, KIND_TICK, KIND_VALIDATED, Entry, EnvelopeError
from streams.framing import frame, route
from streams.partitioning import contact_partition, partition_for, state_partition

CFG = CountingConfig()

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


@settings(max_examples=300, deadline=None)
@given(st.lists(entries, max_size=20))
def test_the_reader_walks_every_entry_in_place(items: list[Entry]) -> None:
    """What the worker reads of each entry (kind, topic, value, key) without building it, and
    the whole entry when it asks (a dead letter, a forward)."""
    reader = envelope.EnvelopeReader(envelope.encode(items))
    for item in items:
        assert reader.next()
        assert (reader.kind, reader.topic, reader.value, reader.key()) == (
            item.kind,
            item.topic,
            item.value,
            item.key,
        )
        assert reader.entry() == item
    assert not reader.next()


@settings(max_examples=200, deadline=None)
@given(st.lists(entries, min_size=1, max_size=5), st.data())
def test_the_reader_gives_the_entries_before_the_damage_then_refuses(
    items: list[Entry], data: st.DataObject
) -> None:
    raw = envelope.encode(items)
    cut = data.draw(st.integers(4, len(raw) - 1))
    read: list[Entry] = []
    with pytest.raises(EnvelopeError):
        reader = envelope.EnvelopeReader(raw[:cut])
        while reader.next():
            read.append(reader.entry())
    assert read == items[: len(read)] and len(read) < len(items)


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


def test_the_ingest_validates_engagement_records_and_frames_the_rest_as_read() -> None:
    at = "2026-05-30T10:00:00Z"
    base = {"event_id": "e1", "org_id": "o", "contact_id": "c1", "occurred_at": at}
    delivery = orjson.dumps({**base, "channel": "email", "message_id": "m1"})
    upsert = orjson.dumps({**base, "type": "upsert", "name": "Ana"})
    unknown_channel = orjson.dumps({**base, "channel": "fax", "message_id": "m1"})
    fetched = {
        TopicPartition("engagement.delivery", 0): [
            _record("engagement.delivery", 0, 1, delivery),
            _record("engagement.delivery", 0, 2, unknown_channel),
        ],
        TopicPartition("engagement.contact", 0): [_record("engagement.contact", 0, 3, upsert)],
    }
    shorts = {"engagement.delivery": "delivery", "engagement.contact": "contact"}

    routed = frame(fetched, 4, 65536, 1_000_000, shorts, CFG.channels)

    ((_partition, raw, count),) = routed.envelopes
    assert count == 3
    reader = envelope.EnvelopeReader(raw)
    kinds: list[tuple[int, int, bytes]] = []
    while reader.next():
        entry = reader.entry()
        # handed on (dead letter, forward) as read: the producer's headers, not the ingest's
        assert entry.kind == KIND_RECORD and entry.headers == [("h", b"1")]
        kinds.append((reader.kind, entry.offset, reader.validated))
    assert [(kind, offset) for kind, offset, _ in kinds] == [
        (KIND_VALIDATED, 1),
        (KIND_RECORD, 2),  # the models will say why it is refused
        (KIND_RECORD, 3),  # the contact topic is always read by the models
    ]
    assert event_codec.decode(kinds[0][2]) == read_plain(
        "delivery", orjson.loads(delivery), CFG.channels
    )
    assert kinds[1][2] == b"" and kinds[2][2] == b""
    # without the topics' names the ingest frames every record as read (an earlier release)
    plain = frame(fetched, 4, 65536, 1_000_000)
    assert {e.kind for _, raw, _ in plain.envelopes for e in envelope.decode(raw)} == {KIND_RECORD}


def test_an_envelope_of_validated_entries_stays_under_its_size() -> None:
    fetched = {
        TopicPartition("engagement.delivery", 0): [
            _record(
                "engagement.delivery",
                0,
                i,
                orjson.dumps(
                    {
                        "event_id": f"e{i}",
                        "org_id": "o",
                        "contact_id": "c1",
                        "occurred_at": "2026-05-30T10:00:00Z",
                        "channel": "email",
                        "message_id": f"m{i}",
                    }
                ),
            )
            for i in range(200)
        ]
    }
    routed = frame(fetched, 4, 65536, 5_000, {"engagement.delivery": "delivery"}, CFG.channels)
    assert len(routed.envelopes) > 1
    assert all(len(raw) <= 5_000 for _, raw, _ in routed.envelopes)
    assert sum(count for _, _, count in routed.envelopes) == 200
