"""The batch path of the worker (`agents.processor`), with no Kafka, Faust or Redis.

A dict stands in for the table, a fixed clock for time, and records are raw bytes exactly as a
producer would write them, so routing, parsing, dead letters, re-keying, the per-contact write
and the outputs are all checked together.
"""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from agents.processor import (
    H_CODE,
    H_REASON,
    H_RECEIVED_AT,
    H_SOURCE_OFFSET,
    H_SOURCE_PARTITION,
    H_SOURCE_TOPIC,
    BatchOutput,
    EngagementProcessor,
    Inbound,
    Outbound,
    RedisOp,
)
from agents.stored import StoredContact, unpack
from counting import CountingConfig
from engagement_monitor.keyspace import record_key as contact_key
from engagement_monitor.keyspace import state_key
from models.outputs import DispatchStatus, TierChange
from streams import envelope
from streams.envelope import KIND_FORWARDED, KIND_TICK
from streams.partitioning import partition_for
from streams.topics import ENVELOPE_TOPIC, TopicNames

PARTITIONS = 8
NAMES = TopicNames("engagement.")
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
NOW_ISO = "2026-06-01T12:00:00Z"
NOW_MS = int(NOW.timestamp() * 1000)
ORG = "org-1"
CFG = CountingConfig()
DAY_S = 86_400

Ref = tuple[str, int, int]  # (topic, partition, offset) of the record, as the "event"


# --------------------------------------------------------------------------- fakes
class FakeStore:
    """The table as the processor sees it, recording every call."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}
        self.gets: list[bytes] = []
        self.puts: list[tuple[bytes, Any]] = []
        self.deletes: list[tuple[bytes, Any]] = []

    def get(self, key: bytes) -> bytes | None:
        self.gets.append(key)
        return self.data.get(key)

    def put(self, key: bytes, value: bytes, ref: Any) -> None:
        self.puts.append((key, ref))
        self.data[key] = value

    def delete(self, key: bytes, ref: Any) -> None:
        self.deletes.append((key, ref))
        self.data.pop(key, None)

    def stored(self, key: bytes) -> StoredContact:
        return unpack(self.data[key], CFG)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def store() -> FakeStore:
    return FakeStore()


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def proc(store: FakeStore, clock: Clock) -> EngagementProcessor:
    return EngagementProcessor(CFG, PARTITIONS, store, NAMES, clock=clock)


# ------------------------------------------------------------------------- records
_ids = itertools.count(1)
_offsets = itertools.count(100)


def key_of(contact: str, org: str = ORG) -> bytes:
    """The contact's table key (its record key unless the org id holds `:` or `%`)."""
    return state_key(org, contact)


def home(contact: str, org: str = ORG) -> int:
    return partition_for(contact_key(org, contact), PARTITIONS)


def foreign(contact: str, org: str = ORG) -> int:
    return (home(contact, org) + 1) % PARTITIONS


def ago(days: float = 0, hours: float = 0, minutes: float = 0) -> datetime:
    return NOW - timedelta(days=days, hours=hours, minutes=minutes)


def body(contact: str, at: datetime, eid: str | None = None, org: str = ORG, **fields: Any) -> Any:
    return {
        "event_id": eid or f"evt-{next(_ids)}",
        "org_id": org,
        "contact_id": contact,
        "occurred_at": at.isoformat(),
        **fields,
    }


def dispatch(contact: str, mid: str, at: datetime, channel: str = "email", **kw: Any) -> Any:
    return body(contact, at, channel=channel, message_id=mid, dispatch_kind="single", **kw)


def interaction(contact: str, mid: str, at: datetime, channel: str = "email", **kw: Any) -> Any:
    return body(contact, at, channel=channel, message_id=mid, **kw)


_UNSET: Any = object()


def rec(
    topic: str,
    value: dict[str, Any] | bytes,
    *,
    key: bytes | None = _UNSET,
    partition: int | None = None,
    offset: int | None = None,
    headers: list[tuple[str, bytes]] | None = None,
    home: int | None = None,
) -> Inbound:
    """An envelope entry of an input record (short topic name given, full name kept, as read).

    By default keyed canonically, read from the contact's own partition, and in an envelope
    of that partition (`home`), where the ingest routes it.
    """
    raw = value if isinstance(value, bytes) else orjson.dumps(value)
    if isinstance(value, dict):
        canonical = contact_key(value["org_id"], value["contact_id"])
        key = canonical if key is _UNSET else key
        partition = partition_for(canonical, PARTITIONS) if partition is None else partition
    else:
        key = None if key is _UNSET else key
    assert partition is not None
    offset = next(_offsets) if offset is None else offset
    home = partition if home is None else home
    full = topic if topic.startswith(NAMES.prefix) else NAMES.full(topic)
    return Inbound(
        full, key, raw, partition, offset, list(headers or []), home, (full, partition, offset)
    )


def from_outbound(item: Outbound, offset: int | None = None) -> list[Inbound]:
    """What the agent reads back when it consumes an envelope the processor published."""
    assert item.partition is not None and item.topic == ENVELOPE_TOPIC
    offset = next(_offsets) if offset is None else offset
    ref = (item.topic, item.partition, offset)
    return [Inbound.of(entry, item.partition, ref) for entry in envelope.decode(item.value)]


def engaged_message(contact: str, mid: str, at: datetime) -> list[Inbound]:
    """A keyed e-mail dispatch, its delivery and an open."""
    return [
        rec("dispatch", dispatch(contact, mid, at)),
        rec("delivery", interaction(contact, mid, at + timedelta(minutes=1))),
        rec("open", interaction(contact, mid, at + timedelta(hours=1))),
    ]


def only(items: list[Outbound]) -> Outbound:
    assert len(items) == 1, items
    return items[0]


# ------------------------------------------------------------------------- reading
def only_op(out: BatchOutput) -> RedisOp:
    assert len(out.redis) == 1, out.redis
    return out.redis[0]


def snapshot(op: RedisOp) -> dict[str, Any]:
    assert op.snapshot is not None
    snap: dict[str, Any] = orjson.loads(op.snapshot)
    return snap


def published(out: BatchOutput, topic: str) -> list[Outbound]:
    return [item for item in out.publish if item.topic == topic]


def tier_records(out: BatchOutput) -> list[dict[str, Any]]:
    records = [orjson.loads(item.value) for item in published(out, "tier-changes")]
    for record in records:
        TierChange.model_validate(record)  # the published shape is the documented one
    return records


def figures(snap: dict[str, Any], channel: str) -> tuple[int, ...]:
    ch = snap["channels"][channel]
    names = ("dispatched", "sending_errors", "delivered", "opened", "clicked", "replied")
    return tuple(ch[name] for name in names)


def headers_dict(headers: list[tuple[str, bytes]]) -> dict[str, bytes]:
    names = [name for name, _ in headers]
    assert len(names) == len(set(names)), f"repeated header in {names}"
    return dict(headers)


# ============================================================================ tests
def test_keyed_messages_on_their_partition_give_one_write_one_snapshot_and_the_due_time(
    proc: EngagementProcessor, store: FakeStore
) -> None:
    sent = ago(days=2)
    batch = engaged_message("c1", "m1", sent)
    key = key_of("c1")

    out = proc.process(batch)

    assert [k for k, _ in store.puts] == [key]
    assert store.puts[0][1][1] == home("c1")  # written in the context of a record it owns
    assert store.deletes == []
    stored = store.stored(key)
    assert stored.version == NOW_MS  # the write's time in ms: versions outlive a dropped entry
    assert stored.published == {None: ("very_high", 100.0), "email": ("very_high", 100.0)}

    op = only_op(out)
    assert (op.org_id, op.contact_id, op.version) == (ORG, "c1", NOW_MS)
    snap = snapshot(op)
    assert snap["org_id"] == ORG and snap["contact_id"] == "c1"
    assert snap["as_of"] == NOW_ISO
    assert snap["window_days"] == 90
    email = snap["channels"]["email"]
    assert email["status"] == "subscribed"
    assert figures(snap, "email") == (1, 0, 1, 1, 0, 0)
    assert email["rates"] == {"delivery": 100.0, "open": 100.0, "click": 0.0, "response": None}
    assert email["engagement"] == {"rate": 100.0, "tier": "very_high"}
    assert snap["dispatched"] == {"total": 1, "by_channel": {"email": 1}}
    assert snap["engagement"] == {"rate": 100.0, "tier": "very_high"}
    assert sorted(op.segments) == [
        ("em:v2:{org-1}:seg:all:very_high", "00000|c1"),
        ("em:v2:{org-1}:seg:email:very_high", "00000|c1"),
    ]

    # the dispatch leaves the window one microsecond after sent + 90 days
    assert out.due == {key: int(sent.timestamp()) + 90 * DAY_S + 1}
    assert out.records_by_topic == Counter({"dispatch": 1, "delivery": 1, "open": 1})
    assert out.outcomes == Counter({"applied": 3})
    assert out.dead_by_code == Counter()
    assert out.forwarded == 0
    assert {item.topic for item in out.publish} == {"tier-changes"}


def test_many_records_of_one_contact_are_written_once(
    proc: EngagementProcessor, store: FakeStore
) -> None:
    batch = [
        *engaged_message("c1", "m1", ago(days=3)),
        *engaged_message("c2", "m1", ago(days=3)),
        *engaged_message("c1", "m2", ago(days=2)),
        rec("dispatch", dispatch("c1", "m3", ago(days=1))),
        rec("contact", body("c1", ago(days=1), type="upsert", name="Ana")),
    ]

    out = proc.process(batch)

    puts = Counter(k for k, _ in store.puts)
    assert puts == Counter({key_of("c1"): 1, key_of("c2"): 1})
    assert Counter(store.gets) == Counter({key_of("c1"): 1, key_of("c2"): 1})
    assert sorted(op.contact_id for op in out.redis) == ["c1", "c2"]
    c1 = snapshot(next(op for op in out.redis if op.contact_id == "c1"))
    assert figures(c1, "email") == (3, 0, 2, 2, 0, 0)
    assert c1["registration"]["name"] == "Ana"
    assert c1["engagement"] == {"rate": 100.0, "tier": "very_high"}
    assert out.outcomes == Counter({"applied": 11})


def test_an_entry_in_another_partitions_envelope_is_forwarded_to_its_owner(
    proc: EngagementProcessor, store: FakeStore
) -> None:
    value = dispatch("c1", "m1", ago(days=1))
    record = rec(
        "dispatch",
        value,
        key=b"some-producer-key",
        partition=5,
        offset=17,
        headers=[("traceparent", b"00-abc")],
        home=foreign("c1"),
    )

    out = proc.process([record])

    assert store.puts == [] and store.deletes == [] and store.gets == []
    assert out.redis == [] and out.due == {}
    assert out.forwarded == 1
    assert out.records_by_topic == Counter({"dispatch": 1})
    (item,) = out.publish
    assert item.topic == ENVELOPE_TOPIC == "internal.envelopes"
    assert item.partition == home("c1") and item.key is None
    (entry,) = envelope.decode(item.value)
    # The entry keeps where the record was read, so a later dead letter still names it.
    assert (entry.kind, entry.topic, entry.partition, entry.offset) == (
        KIND_FORWARDED,
        "engagement.dispatch",
        5,
        17,
    )
    assert (entry.key, entry.value, entry.headers) == (
        b"some-producer-key",
        record.value,
        [("traceparent", b"00-abc")],
    )

    # The owner of the contact reads it from its own envelope partition and applies it.
    back = proc.process(from_outbound(item))

    assert back.publish == []  # a dispatch alone gives no tier: nothing delivered yet
    assert back.forwarded == 0
    assert back.records_by_topic == Counter({"dispatch": 1})
    assert back.outcomes == Counter({"applied": 1})
    assert [k for k, _ in store.puts] == [key_of("c1")]
    assert figures(snapshot(only_op(back)), "email") == (1, 0, 0, 0, 0, 0)


def test_keyless_and_foreign_keyed_records_need_no_hop_when_routed_by_their_ids(
    proc: EngagementProcessor, store: FakeStore
) -> None:
    # The ingest routes by the ids in the value, so whatever the producer's key or the
    # partition it wrote to, the entry arrives in its owner's envelope and is applied at once.
    keyless = rec("dispatch", dispatch("c1", "m1", ago(days=1)), key=None, partition=3)
    foreign_key = rec("dispatch", dispatch("c2", "m1", ago(days=1)), key=b"by-message", partition=6)
    keyless.home, foreign_key.home = home("c1"), home("c2")

    out = proc.process([keyless, foreign_key])

    assert out.forwarded == 0 and published(out, ENVELOPE_TOPIC) == []
    assert sorted(k for k, _ in store.puts) == sorted([key_of("c1"), key_of("c2")])


def test_a_forwarded_entry_on_a_foreign_partition_is_dead_lettered_not_forwarded_again(
    proc: EngagementProcessor, store: FakeStore
) -> None:
    value = orjson.dumps(dispatch("c1", "m1", ago(days=1)))
    record = Inbound(
        "engagement.dispatch", key_of("c1"), value, 3, 99, [], foreign("c1"), None, KIND_FORWARDED
    )

    out = proc.process([record])

    assert store.puts == [] and out.redis == []
    (dead,) = out.publish
    assert dead.topic == "dead-letters" and dead.value == value
    h = headers_dict(dead.headers)
    assert (h[H_SOURCE_TOPIC], h[H_SOURCE_PARTITION], h[H_SOURCE_OFFSET]) == (
        b"engagement.dispatch",
        b"3",
        b"99",
    )
    assert h[H_CODE] == b"internal" and b"EM_PARTITIONS" in h[H_REASON]
    assert out.dead_by_code == Counter({"internal": 1})


def _valid_dispatch(contact: str, **overrides: Any) -> dict[str, Any]:
    value: dict[str, Any] = dispatch(contact, "m-bad", ago(days=1))
    value.update(overrides)
    return value


def _without(value: dict[str, Any], field: str) -> dict[str, Any]:
    return {k: v for k, v in value.items() if k != field}


MALFORMED: list[tuple[str, bytes, str, str]] = [
    ("not_json", b" \xff{this is not json\n", "not_json", "not JSON"),
    ("json_array", b"[1, 2, 3]", "not_json", "not JSON"),
    (
        "missing_message_id",
        orjson.dumps(_without(_valid_dispatch("bad"), "message_id")),
        "missing_field",
        "message_id",
    ),
    (
        "unknown_channel",
        orjson.dumps(_valid_dispatch("bad", channel="fax")),
        "unknown_channel",
        "fax",
    ),
    (
        "future_timestamp",
        orjson.dumps(_valid_dispatch("bad", occurred_at=(NOW + timedelta(minutes=10)).isoformat())),
        "future_timestamp",
        "future",
    ),
    (
        "no_utc_offset",
        orjson.dumps(_valid_dispatch("bad", occurred_at="2026-05-30T10:00:00")),
        "bad_timestamp",
        "occurred_at",
    ),
    (
        # valid in every field but one, so only the size check can reject it
        "oversize",
        orjson.dumps(_valid_dispatch("bad", padding="x" * 70_000)),
        "oversize",
        "oversize",
    ),
]


@pytest.mark.parametrize(
    ("raw", "code", "reason_part"),
    [pytest.param(raw, code, part, id=name) for name, raw, code, part in MALFORMED],
)
def test_malformed_record_is_dead_lettered_unchanged_and_good_ones_still_count(
    proc: EngagementProcessor, store: FakeStore, raw: bytes, code: str, reason_part: str
) -> None:
    bad = Inbound(
        "engagement.dispatch",
        b"org-1:bad",
        raw,
        3,
        42,
        [("traceparent", b"00-xyz"), (H_REASON, b"stale reason from an earlier hop")],
        3,
    )
    good_before = rec("dispatch", dispatch("c1", "m1", ago(days=1)))
    good_after = rec("open", interaction("c1", "m1", ago(hours=20)))

    out = proc.process([good_before, bad, good_after])

    dead = published(out, "dead-letters")
    assert len(dead) == 1
    letter = dead[0]
    assert letter.key == b"org-1:bad"
    assert letter.value == raw  # byte for byte
    assert letter.headers[0] == ("traceparent", b"00-xyz")  # the producer's headers survive
    h = headers_dict(letter.headers)
    assert h[H_SOURCE_TOPIC] == b"engagement.dispatch"  # in full, as read (SPEC §4)
    assert h[H_SOURCE_PARTITION] == b"3"
    assert h[H_SOURCE_OFFSET] == b"42"
    assert h[H_CODE] == code.encode()
    assert reason_part in h[H_REASON].decode()
    assert h[H_RECEIVED_AT] == NOW.isoformat().encode()
    assert out.dead_by_code == Counter({code: 1})
    assert out.records_by_topic == Counter({"dispatch": 2, "open": 1})

    assert [k for k, _ in store.puts] == [key_of("c1")]
    assert figures(snapshot(only_op(out)), "email") == (1, 0, 1, 1, 0, 0)
    assert out.outcomes == Counter({"applied": 2})


def test_unknown_topic_is_dead_lettered(proc: EngagementProcessor, store: FakeStore) -> None:
    record = rec("bounce", dispatch("c1", "m1", ago(days=1)), offset=7)

    out = proc.process([record])

    (letter,) = out.publish
    assert letter.topic == "dead-letters"
    assert headers_dict(letter.headers)[H_CODE] == b"unknown_topic"
    assert store.puts == [] and out.redis == []


def test_dead_letter_of_a_forwarded_entry_names_its_original_source(
    proc: EngagementProcessor,
) -> None:
    # An entry forwarded to its owner is parsed again there; should that fail (the clock
    # moved), the dead letter points at where the producer wrote it.
    future = dispatch("c1", "m1", NOW + timedelta(minutes=4))
    first = proc.process([rec("dispatch", future, partition=2, offset=8, home=foreign("c1"))])
    (forwarded,) = first.publish

    proc.clock = lambda: NOW - timedelta(minutes=5)
    out = proc.process(from_outbound(forwarded))

    (letter,) = out.publish
    h = headers_dict(letter.headers)
    assert letter.topic == "dead-letters" and letter.value == orjson.dumps(future)
    assert h[H_SOURCE_TOPIC] == b"engagement.dispatch"
    assert h[H_SOURCE_PARTITION] == b"2"
    assert h[H_SOURCE_OFFSET] == b"8"
    assert h[H_CODE] == b"future_timestamp"


def test_duplicate_event_id_within_a_batch_changes_nothing(
    proc: EngagementProcessor, store: FakeStore
) -> None:
    batch = engaged_message("c1", "m1", ago(days=2))
    second = rec("dispatch", dispatch("c1", "m2", ago(days=1)))
    original = batch[2]
    # the same open sent again (a producer retry), at another offset
    repeat = rec("open", original.value, key=original.key, partition=original.partition)
    # an open of the other message under an id already seen: a duplicate by contract
    reused_id = rec(
        "open",
        interaction("c1", "m2", ago(hours=5), eid=orjson.loads(original.value)["event_id"]),
    )

    out = proc.process([*batch, second, repeat, reused_id])

    snap = snapshot(only_op(out))
    assert figures(snap, "email") == (2, 0, 1, 1, 0, 0)
    assert out.outcomes == Counter({"applied": 4, "duplicate": 2})
    assert [k for k, _ in store.puts] == [key_of("c1")]


def test_duplicates_across_batches_change_no_figure_and_publish_no_change(
    proc: EngagementProcessor, store: FakeStore
) -> None:
    batch = engaged_message("c1", "m1", ago(days=2))
    first = proc.process(batch)
    redelivered = [rec(r.topic, r.value, key=r.key, partition=r.partition) for r in batch]

    second = proc.process(redelivered)

    before, after = snapshot(only_op(first)), snapshot(only_op(second))
    assert after["channels"] == before["channels"]
    assert after["engagement"] == before["engagement"]
    assert second.outcomes == Counter({"duplicate": 3})
    assert tier_records(second) == []
    assert only_op(second).version == NOW_MS + 1  # same clock: bumped to stay increasing
    assert store.stored(key_of("c1")).version == NOW_MS + 1


def test_tier_changes_are_published_for_a_change_and_not_for_a_replay(
    proc: EngagementProcessor,
) -> None:
    batch = engaged_message("c1", "m1", ago(days=2))

    first = proc.process(batch)
    replay = proc.process(batch)

    changes = tier_records(first)
    assert all(o.key == key_of("c1") for o in published(first, "tier-changes"))
    assert sorted(changes, key=lambda c: c["channel"] or "") == [
        {
            "org_id": ORG,
            "contact_id": "c1",
            "channel": None,
            "previous_tier": None,
            "tier": "very_high",
            "rate": 100.0,
            "changed_at": NOW_ISO,
            "cause": "event",
        },
        {
            "org_id": ORG,
            "contact_id": "c1",
            "channel": "email",
            "previous_tier": None,
            "tier": "very_high",
            "rate": 100.0,
            "changed_at": NOW_ISO,
            "cause": "event",
        },
    ]
    assert first.tier_changes == Counter({"event": 2})
    assert published(replay, "tier-changes") == []
    assert replay.tier_changes == Counter()


def test_rate_move_within_a_tier_is_no_change_but_crossing_a_boundary_is(
    proc: EngagementProcessor,
) -> None:
    proc.process(engaged_message("c1", "m1", ago(days=3)))
    # 4 of 5 delivered engaged = 80 %: still very_high
    for i in range(2, 5):
        proc.process(engaged_message("c1", f"m{i}", ago(days=2)))
    quiet = [
        rec("dispatch", dispatch("c1", "m5", ago(days=1))),
        rec("delivery", interaction("c1", "m5", ago(hours=23))),
    ]
    within = proc.process(quiet)
    assert snapshot(only_op(within))["engagement"] == {"rate": 80.0, "tier": "very_high"}
    assert published(within, "tier-changes") == []

    # 4 of 6 = 66.67 %: high
    crossing = proc.process(
        [
            rec("dispatch", dispatch("c1", "m6", ago(days=1))),
            rec("delivery", interaction("c1", "m6", ago(hours=23))),
        ]
    )
    changes = tier_records(crossing)
    assert {(c["channel"], c["previous_tier"], c["tier"], c["rate"]) for c in changes} == {
        (None, "very_high", "high", 66.67),
        ("email", "very_high", "high", 66.67),
    }


def test_expiry_tick_after_the_window_takes_the_tier_away_with_cause_expiry(
    proc: EngagementProcessor, store: FakeStore, clock: Clock
) -> None:
    key = key_of("c1")
    first = proc.process(engaged_message("c1", "m1", ago(days=89)))
    due = first.due[key]
    assert due == int(ago(days=89).timestamp()) + 90 * DAY_S + 1

    tick = only(proc.ticks([key]))
    assert (tick.topic, tick.key, tick.partition) == (ENVELOPE_TOPIC, None, home("c1"))
    (entry,) = envelope.decode(tick.value)
    assert (entry.kind, entry.key, entry.value) == (KIND_TICK, key, b"")

    # Before the message leaves the window a tick changes nothing.
    early = proc.process(from_outbound(tick))
    assert published(early, "tier-changes") == []
    assert snapshot(only_op(early))["engagement"]["tier"] == "very_high"

    clock.now = datetime.fromtimestamp(due, UTC) + timedelta(seconds=1)
    out = proc.process(from_outbound(tick))

    assert out.records_by_topic == Counter({"expiry-tick": 1})
    assert out.outcomes == Counter()
    changes = tier_records(out)
    stamp = clock.now.isoformat().replace("+00:00", "Z")
    assert sorted(changes, key=lambda c: c["channel"] or "") == [
        {
            "org_id": ORG,
            "contact_id": "c1",
            "channel": None,
            "previous_tier": "very_high",
            "tier": None,
            "rate": None,
            "changed_at": stamp,
            "cause": "expiry",
        },
        {
            "org_id": ORG,
            "contact_id": "c1",
            "channel": "email",
            "previous_tier": "very_high",
            "tier": None,
            "rate": None,
            "changed_at": stamp,
            "cause": "expiry",
        },
    ]
    assert out.tier_changes == Counter({"expiry": 2})
    op = only_op(out)
    assert (op.org_id, op.contact_id, op.snapshot, op.segments) == (ORG, "c1", None, [])
    # nothing left of the contact: the table entry goes, and nothing is due any more
    assert [k for k, _ in store.deletes] == [key]
    assert key not in store.data
    assert out.due == {key: None}


def test_expiry_of_one_message_keeps_the_rest_and_recomputes_the_tier(
    proc: EngagementProcessor, clock: Clock
) -> None:
    key = key_of("c1")
    proc.process(
        [
            *engaged_message("c1", "old", ago(days=89)),
            rec("dispatch", dispatch("c1", "new", ago(days=10))),
            rec("delivery", interaction("c1", "new", ago(days=10) + timedelta(minutes=1))),
        ]
    )
    clock.advance(days=2)

    out = proc.process(from_outbound(only(proc.ticks([key]))))

    snap = snapshot(only_op(out))
    assert figures(snap, "email") == (1, 0, 1, 0, 0, 0)
    assert snap["engagement"] == {"rate": 0.0, "tier": "no_engagement"}
    assert {
        (c["channel"], c["previous_tier"], c["tier"], c["cause"]) for c in tier_records(out)
    } == {
        (None, "high", "no_engagement", "expiry"),
        ("email", "high", "no_engagement", "expiry"),
    }
    assert out.due[key] == int(ago(days=10).timestamp()) + 90 * DAY_S + 1


def test_dispatch_to_an_unsubscribed_channel_publishes_a_sending_error(
    proc: EngagementProcessor,
) -> None:
    batch = [
        rec("dispatch", dispatch("c1", "before", ago(days=5))),
        rec("unsubscribe", body("c1", ago(days=3), channel="email")),
        rec("dispatch", dispatch("c1", "after", ago(days=2))),
    ]

    out = proc.process(batch)

    statuses = published(out, "dispatch-status")
    assert len(statuses) == 1
    assert statuses[0].key == key_of("c1")
    assert orjson.loads(statuses[0].value) == {
        "org_id": ORG,
        "contact_id": "c1",
        "channel": "email",
        "message_id": "after",
        "status": "sending_error",
    }
    DispatchStatus.model_validate_json(statuses[0].value)
    snap = snapshot(only_op(out))
    assert snap["channels"]["email"]["status"] == "unsubscribed"
    assert figures(snap, "email") == (2, 1, 0, 0, 0, 0)

    # Told once per message: a redelivered batch does not tell it again.
    again = proc.process(batch)
    assert published(again, "dispatch-status") == []


def test_late_unsubscribe_dated_before_a_dispatch_turns_it_into_a_sending_error(
    proc: EngagementProcessor,
) -> None:
    proc.process([rec("dispatch", dispatch("c1", "m1", ago(days=2), channel="sms"))])

    out = proc.process([rec("unsubscribe", body("c1", ago(days=3), channel="sms"))])

    (status,) = published(out, "dispatch-status")
    assert orjson.loads(status.value)["message_id"] == "m1"
    assert figures(snapshot(only_op(out)), "sms") == (1, 1, 0, 0, 0, 0)


def test_delete_command_removes_the_contact_and_keeps_only_a_tombstone(
    proc: EngagementProcessor, store: FakeStore, clock: Clock
) -> None:
    key = key_of("c1")
    proc.process(
        [
            rec(
                "contact",
                body("c1", ago(days=30), type="upsert", name="Ana", email="ana@example.com"),
            ),
            rec("contact", body("c1", ago(days=30), type="list_added", list_id="vip")),
            *engaged_message("c1", "m1", ago(days=2)),
        ]
    )
    deleted_at = ago(hours=1)

    out = proc.process([rec("contact", body("c1", deleted_at, type="delete"))])

    op = only_op(out)
    assert (op.org_id, op.contact_id, op.snapshot, op.segments) == (ORG, "c1", None, [])
    assert op.version == NOW_MS + 1  # newer than the snapshot it replaces, so Redis takes it
    assert {
        (c["channel"], c["previous_tier"], c["tier"], c["cause"]) for c in tier_records(out)
    } == {
        (None, "very_high", None, "event"),
        ("email", "very_high", None, "event"),
    }
    # What is kept is only the tombstone that makes later-arriving older events harmless.
    state = store.stored(key).state
    assert state.tombstone is not None
    assert not state.messages and not state.registration and not state.lists
    assert store.stored(key).published == {}

    late = proc.process([rec("open", interaction("c1", "m1", ago(hours=2)))])
    assert late.outcomes == Counter({"dropped_deleted": 1})
    assert only_op(late).snapshot is None

    fresh = proc.process([rec("dispatch", dispatch("c1", "m9", ago(minutes=30)))])
    snap = snapshot(only_op(fresh))
    assert figures(snap, "email") == (1, 0, 0, 0, 0, 0)
    assert snap["registration"]["name"] is None and snap["lists"] == []


def test_tombstone_alone_leaves_the_table_once_it_leaves_the_window(
    proc: EngagementProcessor, store: FakeStore, clock: Clock
) -> None:
    key = key_of("c1")
    proc.process(engaged_message("c1", "m1", ago(days=2)))
    out = proc.process([rec("contact", body("c1", ago(hours=1), type="delete"))])
    assert store.deletes == []  # the tombstone is still needed
    assert out.due[key] == int(ago(hours=1).timestamp()) + 90 * DAY_S + 1

    clock.advance(days=91)
    swept = proc.process(from_outbound(only(proc.ticks([key]))))

    assert [k for k, _ in store.deletes] == [key]
    assert key not in store.data
    assert only_op(swept).snapshot is None
    assert swept.due == {key: None}


# ------------------------------------------------------- bugs found while writing these
def test_redis_version_keeps_growing_after_the_table_entry_was_dropped(
    proc: EngagementProcessor, store: FakeStore, clock: Clock
) -> None:
    """Redis refuses a snapshot older than the version it holds (DELETE_LUA keeps that version
    for a day after a removal), so the versions of one contact must never go backwards."""
    key = key_of("c1")
    first = proc.process([rec("dispatch", dispatch("c1", "m1", ago(days=89)))])
    clock.advance(days=2)
    expired = proc.process(from_outbound(only(proc.ticks([key]))))
    assert key not in store.data  # everything expired: the entry (and its version) is gone
    removal = only_op(expired)
    assert removal.snapshot is None
    assert removal.version > only_op(first).version

    clock.advance(seconds=1)  # a later batch (versions are the write's time in ms)
    new = proc.process([rec("dispatch", dispatch("c1", "m2", clock.now - timedelta(hours=1)))])

    assert only_op(new).version > removal.version, (
        f"new snapshot has version {only_op(new).version}, Redis holds {removal.version} "
        "from the removal and will refuse it"
    )


def test_expiry_tick_of_an_org_id_with_a_colon_updates_that_contact(
    proc: EngagementProcessor, store: FakeStore, clock: Clock
) -> None:
    """SPEC §2 allows any org_id of 1-64 characters; the tick must name the same contact."""
    org = "acme:eu"
    key = key_of("c1", org)
    applied = proc.process([rec("dispatch", dispatch("c1", "m1", ago(days=89), org=org))])
    assert (only_op(applied).org_id, only_op(applied).contact_id) == (org, "c1")
    clock.advance(days=2)

    out = proc.process(from_outbound(only(proc.ticks([key]))))

    op = only_op(out)
    assert (op.org_id, op.contact_id) == (org, "c1")


def test_contacts_of_different_orgs_never_share_state(
    proc: EngagementProcessor,
) -> None:
    """Tenants are isolated (SPEC §1, §5): ("a:b", "c") and ("a", "b:c") are two contacts."""
    out = proc.process(
        [
            rec("dispatch", dispatch("c", "m1", ago(days=1), org="a:b")),
            rec("dispatch", dispatch("b:c", "m2", ago(days=1), org="a")),
        ]
    )

    assert sorted((op.org_id, op.contact_id) for op in out.redis) == [("a", "b:c"), ("a:b", "c")]
    for op in out.redis:
        assert snapshot(op)["dispatched"]["total"] == 1
