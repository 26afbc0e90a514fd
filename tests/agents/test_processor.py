"""The worker's logic (`agents.processor`), with no Kafka, Faust or Redis.

The processor folds the entries of each envelope into decoded contacts it caches, then says at a
checkpoint what changed: per dirty contact the table value, the Redis write and the next expiry,
plus the records to publish. Here a dict stands in for the table (the processor reads it through
its `load` callable, which counts the reads), a fixed clock for time, and records are raw bytes
exactly as a producer would write them. The helpers play the other stages:

- `feed` is the ingest: it routes each record to the partition that owns its contact
  (`streams.framing.route`), frames one envelope per partition and hands its decoded entries to
  `apply`, as the agent does; `deliver` does the same for an envelope the processor published
  itself (a forwarded entry, expiry ticks);
- `Table.land` is a landed checkpoint: it applies the batch's changes to the dict (value None
  deletes the entry). `run` = feed, checkpoint, land: what one batch used to be;
- a worker restart, or a new owner of a partition, is a new processor over the same dict: its
  cache is empty, so it reads what was landed.

So routing, parsing, dead letters, forwarding, the per-contact write, the cache and the outputs
are all checked together.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from agents.contact_cache import ContactCache, estimated_bytes
from agents.processor import (
    LOCATED_MAX,
    CheckpointBatch,
    ContactChange,
    EngagementProcessor,
    Outbound,
    SnapshotWrite,
    render_job,
)
from agents.redis_args import segment_members
from agents.stored import StoredContact, peek, unpack
from counting import CountingConfig
from engagement_monitor.keyspace import record_key as contact_key
from engagement_monitor.keyspace import state_key
from engagement_monitor.snapshot_codec import unpack_snapshot
from models.outputs import DispatchStatus, TierChange
from streams import envelope
from streams.dead_letters import (
    H_CODE,
    H_REASON,
    H_RECEIVED_AT,
    H_SOURCE_OFFSET,
    H_SOURCE_PARTITION,
    H_SOURCE_TOPIC,
)
from streams.envelope import (
    KIND_FORWARDED,
    KIND_RECORD,
    KIND_TICK,
    KIND_VALIDATED,
    VALIDATED_HEADER,
    Entry,
)
from streams.framing import read, route
from streams.partitioning import partition_for
from streams.topics import ENVELOPE_TOPIC, TopicNames
from tests.unit.factories import rate_tier

PARTITIONS = 8
NAMES = TopicNames("engagement.")
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
NOW_ISO = "2026-06-01T12:00:00Z"
NOW_MS = int(NOW.timestamp() * 1000)
ORG = "org-1"
CFG = CountingConfig()
DAY_S = 86_400


# --------------------------------------------------------------------------- fakes
class Table:
    """The contact table: what the processor loads, and where a landed checkpoint writes."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}
        self.loads: list[tuple[int, bytes]] = []  # (partition, key) of every read

    def load(self, partition: int, key: bytes) -> bytes | None:
        self.loads.append((partition, key))
        return self.data.get(key)

    def land(self, batch: CheckpointBatch) -> CheckpointBatch:
        """Write the checkpoint's changes, as `agents.checkpoint` does (steps 3 and 4)."""
        for change in batch.changes:
            if change.value is None:
                self.data.pop(change.key, None)
            else:
                self.data[change.key] = change.value
        return batch

    def loaded(self) -> Counter[bytes]:
        return Counter(key for _, key in self.loads)

    def stored(self, key: bytes) -> StoredContact:
        return unpack(self.data[key], CFG)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def make(table: Table, clock: Clock, **kw: Any) -> EngagementProcessor:
    """A processor over `table`: a second one over the same table is a restart or a new owner."""
    return EngagementProcessor(CFG, PARTITIONS, NAMES, table.load, clock=clock, **kw)


@pytest.fixture
def table() -> Table:
    return Table()


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def proc(table: Table, clock: Clock) -> EngagementProcessor:
    return make(table, clock)


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
) -> Entry:
    """The envelope entry of an input record (short topic name given, full name kept, as read).

    By default keyed canonically and read from the contact's own partition.
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
    full = topic if topic.startswith(NAMES.prefix) else NAMES.full(topic)
    return Entry(KIND_RECORD, full, partition, offset, key, raw, list(headers or []))


INGEST_VALIDATES = [True]  # set per test by `ingest_mode`


@pytest.fixture(autouse=True, params=["validated by the ingest", "as read"])
def ingest_mode(request: pytest.FixtureRequest) -> Iterable[None]:
    """Every test runs twice: with the ingest validating the engagement records it frames
    (`KIND_VALIDATED`, what `engagement-monitor worker` does) and with every record as read
    (an ingest of an earlier release, or a record the fast path leaves to the models). The
    processor must say the same either way."""
    INGEST_VALIDATES[0] = request.param == "validated by the ingest"
    yield
    INGEST_VALIDATES[0] = True


def ingested(entry: Entry) -> tuple[int, Entry]:
    """(owning partition, entry as the ingest frames it): `streams.framing.read`, as `frame`
    calls it (an oversize record is a dead letter there, never framed: left as read here)."""
    if entry.kind != KIND_RECORD or not INGEST_VALIDATES[0]:
        return route(entry.value, entry.partition, PARTITIONS), entry
    short = NAMES.short(entry.topic)
    small = len(entry.value) <= CFG.max_record_bytes
    owner, event = read(
        entry.value, entry.partition, PARTITIONS, short if small else None, CFG.channels
    )
    if event is None:
        return owner, entry
    headers = [(VALIDATED_HEADER, event), *entry.headers]
    validated = Entry(
        KIND_VALIDATED, entry.topic, entry.partition, entry.offset, entry.key, entry.value, headers
    )
    return owner, validated


def feed(proc: EngagementProcessor, records: Iterable[Entry]) -> int:
    """The ingest and the agent: one envelope per owning partition, framed and read in place."""
    by_home: dict[int, list[Entry]] = {}
    for entry in records:
        owner, framed = ingested(entry)
        by_home.setdefault(owner, []).append(framed)
    return sum(
        proc.apply_envelope(envelope.encode(entries), partition)
        for partition, entries in by_home.items()
    )


def deliver(proc: EngagementProcessor, item: Outbound) -> int:
    """What the agent does with an envelope the processor published (on its own partition)."""
    assert item.partition is not None and item.topic == ENVELOPE_TOPIC
    return proc.apply_envelope(item.value, item.partition)


def land(proc: EngagementProcessor, table: Table, batch: CheckpointBatch) -> CheckpointBatch:
    """Land a checkpoint as the worker does: the table written, then the processor told."""
    table.land(batch)
    proc.landed(batch)
    return batch


def run(proc: EngagementProcessor, table: Table, records: Iterable[Entry]) -> CheckpointBatch:
    """Feed the records, then a checkpoint, landed."""
    feed(proc, records)
    return land(proc, table, proc.checkpoint())


def tick(proc: EngagementProcessor, table: Table, key: bytes) -> CheckpointBatch:
    """The expiry sweep's tick for `key`, applied by its owner, then a checkpoint, landed."""
    deliver(proc, only(proc.ticks([key])))
    return land(proc, table, proc.checkpoint())


def engaged_message(contact: str, mid: str, at: datetime) -> list[Entry]:
    """A keyed e-mail dispatch, its delivery and an open."""
    return [
        rec("dispatch", dispatch(contact, mid, at)),
        rec("delivery", interaction(contact, mid, at + timedelta(minutes=1))),
        rec("open", interaction(contact, mid, at + timedelta(hours=1))),
    ]


def again(records: Sequence[Entry]) -> list[Entry]:
    """The same records sent again by their producer (a retry): new offsets, same bytes."""
    return [rec(r.topic, r.value, key=r.key, partition=r.partition) for r in records]


def only(items: list[Outbound]) -> Outbound:
    assert len(items) == 1, items
    return items[0]


# ------------------------------------------------------------------------- reading
def only_change(batch: CheckpointBatch) -> ContactChange:
    assert len(batch.changes) == 1, batch.changes
    return batch.changes[0]


def rendered(change: ContactChange) -> SnapshotWrite:
    """What Redis is asked to show of a changed contact: its job, rendered as the snapshot
    process (or a worker without one) renders it."""
    return render_job(change.redis, CFG)


def only_write(batch: CheckpointBatch) -> SnapshotWrite:
    return rendered(only_change(batch))


def write_of(batch: CheckpointBatch, contact: str, org: str = ORG) -> SnapshotWrite:
    (change,) = [c for c in batch.changes if c.key == key_of(contact, org)]
    return rendered(change)


def written(batch: CheckpointBatch) -> list[bytes]:
    return [c.key for c in batch.changes if c.value is not None]


def removed(batch: CheckpointBatch) -> list[bytes]:
    return [c.key for c in batch.changes if c.value is None]


def dues(batch: CheckpointBatch) -> dict[bytes, int | None]:
    return {c.key: c.due for c in batch.changes}


def snapshot(write: SnapshotWrite) -> dict[str, Any]:
    assert write.snapshot is not None
    snap: dict[str, Any] = orjson.loads(unpack_snapshot(write.snapshot))
    return snap


def published(batch: CheckpointBatch, topic: str) -> list[Outbound]:
    return [item for item in batch.outputs if item.topic == topic]


def tier_records(batch: CheckpointBatch) -> list[dict[str, Any]]:
    records = [orjson.loads(item.value) for item in published(batch, "tier-changes")]
    for record in records:
        TierChange.model_validate(record)  # the published shape is the documented one
    return records


def tier_moves(batch: CheckpointBatch) -> set[tuple[str | None, str | None, str | None, str]]:
    return {(c["channel"], c["previous_tier"], c["tier"], c["cause"]) for c in tier_records(batch)}


def figures(snap: dict[str, Any], channel: str) -> tuple[int, ...]:
    ch = snap["channels"][channel]
    names = ("dispatched", "sending_errors", "delivered", "opened", "clicked", "replied")
    return tuple(ch[name] for name in names)


def table_figures(
    proc: EngagementProcessor, table: Table, contact: str, channel: str = "email"
) -> tuple[int, ...]:
    """The figures of what the table holds for a contact (as a Redis rebuild would show)."""
    key = key_of(contact)
    return figures(snapshot(proc.snapshot_of(key, table.stored(key), proc.clock())), channel)


def headers_dict(headers: list[tuple[str, bytes]]) -> dict[str, bytes]:
    names = [name for name, _ in headers]
    assert len(names) == len(set(names)), f"repeated header in {names}"
    return dict(headers)


# ============================================================================ tests
def test_keyed_messages_on_their_partition_give_one_write_one_snapshot_and_the_due_time(
    proc: EngagementProcessor, table: Table
) -> None:
    sent = ago(days=2)
    records = engaged_message("c1", "m1", sent)
    key = key_of("c1")

    out = run(proc, table, records)

    change = only_change(out)
    assert change.key == key and change.value is not None
    assert change.partition == home("c1")  # its changelog record goes to the owning partition
    assert table.loads == [(home("c1"), key)]  # read once, from the partition that owns it
    stored = table.stored(key)
    assert stored.version == NOW_MS  # the write's time in ms: versions outlive a dropped entry
    assert stored.published == {None: ("very_high", 100.0), "email": ("very_high", 100.0)}
    due = int(sent.timestamp()) + 90 * DAY_S + 1
    assert peek(change.value, CFG) == (NOW_MS, due)  # the header alone tells both

    assert change.redis.shown and change.redis.value == change.value
    write = rendered(change)
    assert (write.org_id, write.contact_id, write.version) == (ORG, "c1", NOW_MS)
    snap = snapshot(write)
    assert snap["org_id"] == ORG and snap["contact_id"] == "c1"
    assert snap["as_of"] == NOW_ISO
    assert snap["window_days"] == 90
    email = snap["channels"]["email"]
    assert email["status"] == "subscribed"
    assert figures(snap, "email") == (1, 0, 1, 1, 0, 0)
    assert email["rates"] == {
        "delivery": 100.0,
        "open": 100.0,
        "click": 0.0,
        "response": None,
        "bounce": 0.0,
        "complaint": 0.0,
    }
    assert rate_tier(email["engagement"]) == {"rate": 100.0, "tier": "very_high"}
    assert snap["dispatched"] == {"total": 1, "by_channel": {"email": 1}}
    assert rate_tier(snap["engagement"]) == {"rate": 100.0, "tier": "very_high"}
    assert write.tiers == {None: ("very_high", 100.0), "email": ("very_high", 100.0)}
    assert sorted(segment_members(write.tiers)) == [
        ("seg:all:very_high", "00000"),  # set em:v2:{org-1}:seg:all:very_high, member 00000|c1
        ("seg:email:very_high", "00000"),
    ]

    # the dispatch leaves the window one microsecond after sent + 90 days
    assert dues(out) == {key: due}
    assert out.entries == 3
    assert out.records_by_topic == Counter({"dispatch": 1, "delivery": 1, "open": 1})
    assert out.outcomes == Counter({"applied": 3})
    assert out.dead_by_code == Counter()
    assert out.forwarded == 0
    assert {item.topic for item in out.outputs} == {"tier-changes"}


def test_many_records_of_one_contact_in_many_envelopes_are_written_once_per_checkpoint(
    proc: EngagementProcessor, table: Table
) -> None:
    records = [
        *engaged_message("c1", "m1", ago(days=3)),
        *engaged_message("c2", "m1", ago(days=3)),
        *engaged_message("c1", "m2", ago(days=2)),
        rec("dispatch", dispatch("c1", "m3", ago(days=1))),
        rec("contact", body("c1", ago(days=1), type="upsert", name="Ana")),
    ]

    # Writes are per checkpoint, not per envelope: one envelope per record, one checkpoint.
    for record in records:
        feed(proc, [record])
    out = land(proc, table, proc.checkpoint())

    assert Counter(c.key for c in out.changes) == Counter({key_of("c1"): 1, key_of("c2"): 1})
    assert table.loaded() == Counter({key_of("c1"): 1, key_of("c2"): 1})
    assert sorted(c.redis.contact_id for c in out.changes) == ["c1", "c2"]
    c1 = snapshot(write_of(out, "c1"))
    assert figures(c1, "email") == (3, 0, 2, 2, 0, 0)
    assert c1["registration"]["name"] == "Ana"
    assert rate_tier(c1["engagement"]) == {"rate": 100.0, "tier": "very_high"}
    assert out.outcomes == Counter({"applied": 11})
    assert out.entries == 11
    # one tier change per scope and contact, however many envelopes moved it
    assert out.tier_changes == Counter({"event": 4})


def test_an_entry_in_another_partitions_envelope_is_forwarded_to_its_owner(
    proc: EngagementProcessor, table: Table
) -> None:
    value = dispatch("c1", "m1", ago(days=1))
    record = rec(
        "dispatch",
        value,
        key=b"some-producer-key",
        partition=5,
        offset=17,
        headers=[("traceparent", b"00-abc")],
    )

    proc.apply([record], foreign("c1"))
    out = land(proc, table, proc.checkpoint())

    assert out.changes == [] and table.loads == [] and table.data == {}
    assert len(proc.cache) == 0  # nothing of the contact is held here
    assert out.forwarded == 1
    assert out.entries == 1
    assert out.records_by_topic == Counter({"dispatch": 1})
    (item,) = out.outputs
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
    deliver(proc, item)
    back = land(proc, table, proc.checkpoint())

    assert back.outputs == []  # a dispatch alone gives no tier: nothing delivered yet
    assert back.forwarded == 0
    assert back.records_by_topic == Counter({"dispatch": 1})
    assert back.outcomes == Counter({"applied": 1})
    assert written(back) == [key_of("c1")]
    assert figures(snapshot(only_write(back)), "email") == (1, 0, 0, 0, 0, 0)


def test_keyless_and_foreign_keyed_records_need_no_hop_when_routed_by_their_ids(
    proc: EngagementProcessor, table: Table
) -> None:
    # The ingest routes by the ids in the value, so whatever the producer's key or the
    # partition it wrote to, the entry arrives in its owner's envelope and is applied at once.
    keyless = rec("dispatch", dispatch("c1", "m1", ago(days=1)), key=None, partition=3)
    foreign_key = rec("dispatch", dispatch("c2", "m1", ago(days=1)), key=b"by-message", partition=6)
    assert route(keyless.value, 3, PARTITIONS) == home("c1")
    assert route(foreign_key.value, 6, PARTITIONS) == home("c2")

    out = run(proc, table, [keyless, foreign_key])

    assert out.forwarded == 0 and published(out, ENVELOPE_TOPIC) == []
    assert sorted(written(out)) == sorted([key_of("c1"), key_of("c2")])


def test_a_forwarded_entry_on_a_foreign_partition_is_dead_lettered_not_forwarded_again(
    proc: EngagementProcessor, table: Table
) -> None:
    value = orjson.dumps(dispatch("c1", "m1", ago(days=1)))
    entry = Entry(KIND_FORWARDED, "engagement.dispatch", 3, 99, key_of("c1"), value, [])

    proc.apply([entry], foreign("c1"))
    out = land(proc, table, proc.checkpoint())

    assert out.changes == [] and table.data == {}
    (dead,) = out.outputs
    assert dead.topic == "dead-letters" and dead.value == value
    h = headers_dict(dead.headers)
    assert (h[H_SOURCE_TOPIC], h[H_SOURCE_PARTITION], h[H_SOURCE_OFFSET]) == (
        b"engagement.dispatch",
        b"3",
        b"99",
    )
    assert h[H_CODE] == b"internal" and b"EM_PARTITIONS" in h[H_REASON]
    assert out.dead_by_code == Counter({"internal": 1})
    assert out.forwarded == 0


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
    proc: EngagementProcessor, table: Table, raw: bytes, code: str, reason_part: str
) -> None:
    bad = Entry(
        KIND_RECORD,
        "engagement.dispatch",
        3,
        42,
        b"org-1:bad",
        raw,
        [("traceparent", b"00-xyz"), (H_REASON, b"stale reason from an earlier hop")],
    )
    good_before = rec("dispatch", dispatch("c1", "m1", ago(days=1)))
    good_after = rec("open", interaction("c1", "m1", ago(hours=20)))

    out = run(proc, table, [good_before, bad, good_after])

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

    assert written(out) == [key_of("c1")]
    assert table.loaded() == Counter({key_of("c1"): 1})  # nothing read for the bad record
    assert figures(snapshot(only_write(out)), "email") == (1, 0, 1, 1, 0, 0)
    assert out.outcomes == Counter({"applied": 2})


def test_unknown_topic_is_dead_lettered(proc: EngagementProcessor, table: Table) -> None:
    record = rec("bogus", dispatch("c1", "m1", ago(days=1)), offset=7)

    out = run(proc, table, [record])

    (letter,) = out.outputs
    assert letter.topic == "dead-letters"
    assert headers_dict(letter.headers)[H_CODE] == b"unknown_topic"
    assert out.changes == [] and table.data == {}


def test_dead_letter_of_a_forwarded_entry_names_its_original_source(
    proc: EngagementProcessor, table: Table, clock: Clock
) -> None:
    # An entry forwarded to its owner is parsed again there; should that fail (the clock
    # moved), the dead letter points at where the producer wrote it.
    future = dispatch("c1", "m1", NOW + timedelta(minutes=4))
    proc.apply([rec("dispatch", future, partition=2, offset=8)], foreign("c1"))
    first = land(proc, table, proc.checkpoint())
    (forwarded,) = first.outputs

    clock.now = NOW - timedelta(minutes=5)
    deliver(proc, forwarded)
    out = land(proc, table, proc.checkpoint())

    (letter,) = out.outputs
    h = headers_dict(letter.headers)
    assert letter.topic == "dead-letters" and letter.value == orjson.dumps(future)
    assert h[H_SOURCE_TOPIC] == b"engagement.dispatch"
    assert h[H_SOURCE_PARTITION] == b"2"
    assert h[H_SOURCE_OFFSET] == b"8"
    assert h[H_CODE] == b"future_timestamp"
    assert out.changes == []


def test_duplicate_event_id_within_a_checkpoint_changes_nothing(
    proc: EngagementProcessor, table: Table
) -> None:
    records = engaged_message("c1", "m1", ago(days=2))
    second = rec("dispatch", dispatch("c1", "m2", ago(days=1)))
    original = records[2]
    # the same open sent again (a producer retry), at another offset
    (repeat,) = again([original])
    # an open of the other message under an id already seen: a duplicate by contract
    reused_id = rec(
        "open",
        interaction("c1", "m2", ago(hours=5), eid=orjson.loads(original.value)["event_id"]),
    )

    out = run(proc, table, [*records, second, repeat, reused_id])

    snap = snapshot(only_write(out))
    assert figures(snap, "email") == (2, 0, 1, 1, 0, 0)
    assert out.outcomes == Counter({"applied": 4, "duplicate": 2})
    assert written(out) == [key_of("c1")]


def test_duplicates_across_checkpoints_change_no_figure_and_write_nothing(
    proc: EngagementProcessor, table: Table, clock: Clock
) -> None:
    records = engaged_message("c1", "m1", ago(days=2))
    first = run(proc, table, records)
    landed = dict(table.data)
    clock.advance(seconds=1)

    second = run(proc, table, again(records))

    # Was: a second write of the same figures with a bumped version. A contact only touched by
    # duplicates is not dirty: nothing to write, nothing for Redis, no tier change.
    assert second.outcomes == Counter({"duplicate": 3})
    assert second.changes == []
    assert second.outputs == [] and tier_records(second) == []
    assert table.data == landed
    assert table.stored(key_of("c1")).version == only_write(first).version == NOW_MS

    # Nor on a restarted worker, which reads the contact back from the table.
    restarted = make(table, clock)
    third = run(restarted, table, again(records))
    assert third.outcomes == Counter({"duplicate": 3})
    assert third.changes == [] and third.outputs == []
    assert table.data == landed


@pytest.mark.parametrize("outcome", ["duplicate", "too_old", "dropped_deleted"])
def test_events_that_change_nothing_leave_the_contact_clean(
    proc: EngagementProcessor, table: Table, outcome: str
) -> None:
    records = engaged_message("c1", "m1", ago(days=2))
    if outcome == "dropped_deleted":
        records.append(rec("contact", body("c1", ago(hours=1), type="delete")))
    run(proc, table, records)
    landed = dict(table.data)
    noop = {
        "duplicate": again(records[:1]),
        "too_old": [rec("dispatch", dispatch("c1", "m0", ago(days=91)))],
        "dropped_deleted": [rec("open", interaction("c1", "m1", ago(hours=2)))],
    }[outcome]

    out = run(proc, table, noop)

    assert out.outcomes == Counter({outcome: 1})
    assert out.changes == [] and out.outputs == []
    assert proc.cache.dirty == {}
    assert table.data == landed


def test_tier_changes_are_published_for_a_change_and_not_for_a_replay(
    proc: EngagementProcessor, table: Table, clock: Clock
) -> None:
    records = engaged_message("c1", "m1", ago(days=2))

    first = run(proc, table, records)
    replay = run(proc, table, records)

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

    # The published tiers are in the table value: a new owner does not publish them again.
    new_owner = make(table, clock)
    assert published(run(new_owner, table, records), "tier-changes") == []


def test_rate_move_within_a_tier_is_no_change_but_crossing_a_boundary_is(
    proc: EngagementProcessor, table: Table
) -> None:
    run(proc, table, engaged_message("c1", "m1", ago(days=3)))
    # 4 of 5 delivered engaged = 80 %: still very_high
    for i in range(2, 5):
        run(proc, table, engaged_message("c1", f"m{i}", ago(days=2)))
    quiet = [
        rec("dispatch", dispatch("c1", "m5", ago(days=1))),
        rec("delivery", interaction("c1", "m5", ago(hours=23))),
    ]
    within = run(proc, table, quiet)
    assert rate_tier(snapshot(only_write(within))["engagement"]) == {
        "rate": 80.0,
        "tier": "very_high",
    }
    assert published(within, "tier-changes") == []

    # 4 of 6 = 66.67 %: high
    crossing = run(
        proc,
        table,
        [
            rec("dispatch", dispatch("c1", "m6", ago(days=1))),
            rec("delivery", interaction("c1", "m6", ago(hours=23))),
        ],
    )
    changes = tier_records(crossing)
    assert {(c["channel"], c["previous_tier"], c["tier"], c["rate"]) for c in changes} == {
        (None, "very_high", "high", 66.67),
        ("email", "very_high", "high", 66.67),
    }


def test_tiers_are_compared_with_those_published_at_the_previous_checkpoint(
    proc: EngagementProcessor, table: Table
) -> None:
    run(proc, table, engaged_message("c1", "m1", ago(days=3)))  # 1 of 1: very_high

    # Between two checkpoints the contact goes to high (1 of 2) and back (2 of 2): the tier
    # published last is the tier at the checkpoint, so there is nothing to tell.
    feed(proc, [rec("dispatch", dispatch("c1", "m2", ago(days=2)))])
    feed(proc, [rec("delivery", interaction("c1", "m2", ago(days=2) + timedelta(minutes=1)))])
    feed(proc, [rec("open", interaction("c1", "m2", ago(days=2) + timedelta(hours=1)))])
    back = land(proc, table, proc.checkpoint())
    assert snapshot(only_write(back))["engagement"]["tier"] == "very_high"
    assert published(back, "tier-changes") == []

    # very_high -> high (2 of 3) -> high (2 of 4) -> low (2 of 5) in one checkpoint: one move
    # per scope, from the tier published before to the tier now.
    for i in range(3, 6):
        sent = ago(days=1, hours=i)
        feed(proc, [rec("dispatch", dispatch("c1", f"m{i}", sent))])
        feed(proc, [rec("delivery", interaction("c1", f"m{i}", sent + timedelta(minutes=1)))])
    down = land(proc, table, proc.checkpoint())
    assert tier_moves(down) == {
        (None, "very_high", "low", "event"),
        ("email", "very_high", "low", "event"),
    }
    assert table.stored(key_of("c1")).published == {None: ("low", 40.0), "email": ("low", 40.0)}


def test_expiry_tick_after_the_window_takes_the_tier_away_with_cause_expiry(
    proc: EngagementProcessor, table: Table, clock: Clock
) -> None:
    key = key_of("c1")
    first = run(proc, table, engaged_message("c1", "m1", ago(days=89)))
    due = only_change(first).due
    assert due == int(ago(days=89).timestamp()) + 90 * DAY_S + 1

    tick_envelope = only(proc.ticks([key]))
    assert (tick_envelope.topic, tick_envelope.key, tick_envelope.partition) == (
        ENVELOPE_TOPIC,
        None,
        home("c1"),
    )
    (entry,) = envelope.decode(tick_envelope.value)
    assert (entry.kind, entry.key, entry.value) == (KIND_TICK, key, b"")

    # Before the message leaves the window a tick changes nothing (but is written again).
    deliver(proc, tick_envelope)
    early = land(proc, table, proc.checkpoint())
    assert published(early, "tier-changes") == []
    assert snapshot(only_write(early))["engagement"]["tier"] == "very_high"

    assert due is not None
    clock.now = datetime.fromtimestamp(due, UTC) + timedelta(seconds=1)
    deliver(proc, tick_envelope)
    out = land(proc, table, proc.checkpoint())

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
    write = only_write(out)
    assert (write.org_id, write.contact_id) == (ORG, "c1")
    assert write.tiers == {None: (None, None), "email": (None, None)}
    assert segment_members(write.tiers) == []
    # every message left: the contact stays shown, with zeros, until it is deleted (SPEC §3)
    assert write.snapshot is not None
    shown = orjson.loads(unpack_snapshot(write.snapshot))
    assert figures(shown, "email") == (0, 0, 0, 0, 0, 0)
    assert shown["channels"]["email"]["status"] == "subscribed"
    assert rate_tier(shown["engagement"]) == {"rate": None, "tier": None}
    assert removed(out) == [] and key in table.data
    assert dues(out) == {key: None}  # nothing is due any more


def test_expiry_of_one_message_keeps_the_rest_and_recomputes_the_tier(
    proc: EngagementProcessor, table: Table, clock: Clock
) -> None:
    key = key_of("c1")
    run(
        proc,
        table,
        [
            *engaged_message("c1", "old", ago(days=89)),
            rec("dispatch", dispatch("c1", "new", ago(days=10))),
            rec("delivery", interaction("c1", "new", ago(days=10) + timedelta(minutes=1))),
        ],
    )
    clock.advance(days=2)

    out = tick(proc, table, key)

    snap = snapshot(only_write(out))
    assert figures(snap, "email") == (1, 0, 1, 0, 0, 0)
    assert rate_tier(snap["engagement"]) == {"rate": 0.0, "tier": "no_engagement"}
    assert tier_moves(out) == {
        (None, "high", "no_engagement", "expiry"),
        ("email", "high", "no_engagement", "expiry"),
    }
    assert dues(out)[key] == int(ago(days=10).timestamp()) + 90 * DAY_S + 1


def test_the_cause_is_event_when_an_event_touched_the_contact_since_the_last_checkpoint(
    proc: EngagementProcessor, table: Table, clock: Clock
) -> None:
    key = key_of("c1")
    run(
        proc,
        table,
        [
            *engaged_message("c1", "old", ago(days=89)),
            rec("dispatch", dispatch("c1", "new", ago(days=10))),
            rec("delivery", interaction("c1", "new", ago(days=10) + timedelta(minutes=1))),
        ],
    )
    clock.advance(days=2)

    # The tick and an event in the same checkpoint: "event", whichever came first.
    deliver(proc, only(proc.ticks([key])))
    feed(proc, [rec("contact", body("c1", clock.now - timedelta(hours=1), type="upsert"))])
    out = land(proc, table, proc.checkpoint())

    assert tier_moves(out) == {
        (None, "high", "no_engagement", "event"),
        ("email", "high", "no_engagement", "event"),
    }
    assert out.tier_changes == Counter({"event": 2})

    # The next checkpoint's contact was touched by ticks only: "expiry" again.
    clock.advance(days=80)
    assert tier_moves(tick(proc, table, key)) == {
        (None, "no_engagement", None, "expiry"),
        ("email", "no_engagement", None, "expiry"),
    }


def test_dispatch_to_an_unsubscribed_channel_publishes_a_sending_error(
    proc: EngagementProcessor, table: Table
) -> None:
    records = [
        rec("dispatch", dispatch("c1", "before", ago(days=5))),
        rec("unsubscribe", body("c1", ago(days=3), channel="email")),
        rec("dispatch", dispatch("c1", "after", ago(days=2))),
    ]

    out = run(proc, table, records)

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
    snap = snapshot(only_write(out))
    assert snap["channels"]["email"]["status"] == "unsubscribed"
    assert figures(snap, "email") == (2, 1, 0, 0, 0, 0)

    # Told once per message: redelivered records do not tell it again.
    replayed = run(proc, table, records)
    assert published(replayed, "dispatch-status") == []


def test_late_unsubscribe_dated_before_a_dispatch_turns_it_into_a_sending_error(
    proc: EngagementProcessor, table: Table
) -> None:
    run(proc, table, [rec("dispatch", dispatch("c1", "m1", ago(days=2), channel="sms"))])

    out = run(proc, table, [rec("unsubscribe", body("c1", ago(days=3), channel="sms"))])

    (status,) = published(out, "dispatch-status")
    assert orjson.loads(status.value)["message_id"] == "m1"
    assert figures(snapshot(only_write(out)), "sms") == (1, 1, 0, 0, 0, 0)


def test_delete_command_removes_the_contact_and_keeps_only_a_tombstone(
    proc: EngagementProcessor, table: Table
) -> None:
    key = key_of("c1")
    run(
        proc,
        table,
        [
            rec(
                "contact",
                body("c1", ago(days=30), type="upsert", name="Ana", email="ana@example.com"),
            ),
            rec("contact", body("c1", ago(days=30), type="list_added", list_id="vip")),
            *engaged_message("c1", "m1", ago(days=2)),
        ],
    )
    deleted_at = ago(hours=1)

    out = run(proc, table, [rec("contact", body("c1", deleted_at, type="delete"))])

    write = only_write(out)
    assert (write.org_id, write.contact_id, write.snapshot, write.tiers) == (ORG, "c1", None, {})
    assert write.version == NOW_MS + 1  # newer than the snapshot it replaces, so Redis takes it
    assert tier_moves(out) == {
        (None, "very_high", None, "event"),
        ("email", "very_high", None, "event"),
    }
    # What is kept is only the tombstone that makes later-arriving older events harmless.
    assert written(out) == [key]
    state = table.stored(key).state
    assert state.tombstone is not None
    assert not state.messages and not state.registration and not state.lists
    assert table.stored(key).published == {}

    # Was: written again, still without a snapshot. Now: dropped, so nothing to write.
    landed = dict(table.data)
    late = run(proc, table, [rec("open", interaction("c1", "m1", ago(hours=2)))])
    assert late.outcomes == Counter({"dropped_deleted": 1})
    assert late.changes == [] and table.data == landed

    fresh = run(proc, table, [rec("dispatch", dispatch("c1", "m9", ago(minutes=30)))])
    snap = snapshot(only_write(fresh))
    assert figures(snap, "email") == (1, 0, 0, 0, 0, 0)
    assert snap["registration"]["name"] is None and snap["lists"] == []


def test_tombstone_alone_leaves_the_table_once_it_leaves_the_window(
    proc: EngagementProcessor, table: Table, clock: Clock
) -> None:
    key = key_of("c1")
    run(proc, table, engaged_message("c1", "m1", ago(days=2)))
    out = run(proc, table, [rec("contact", body("c1", ago(hours=1), type="delete"))])
    assert removed(out) == []  # the tombstone is still needed
    assert dues(out)[key] == int(ago(hours=1).timestamp()) + 90 * DAY_S + 1

    clock.advance(days=91)
    swept = tick(proc, table, key)

    assert removed(swept) == [key]
    assert key not in table.data
    assert only_write(swept).snapshot is None
    assert dues(swept) == {key: None}


# --------------------------------------------------------------- the contact cache
def test_a_cached_contact_is_loaded_from_the_table_once_across_checkpoints(
    proc: EngagementProcessor, table: Table, clock: Clock
) -> None:
    key = key_of("c1")
    for i in range(1, 4):
        run(proc, table, engaged_message("c1", f"m{i}", ago(days=4 - i)))
        clock.advance(seconds=1)
    deliver(proc, only(proc.ticks([key])))
    land(proc, table, proc.checkpoint())

    assert table.loads == [(home("c1"), key)]
    assert proc.cache.loads == 1
    assert len(proc.cache) == 1 and proc.cache.dirty == {}

    # A restarted worker has an empty cache: it reads what was landed, once.
    restarted = make(table, clock)
    out = run(restarted, table, engaged_message("c1", "m4", ago(days=1)))
    assert table.loaded() == Counter({key: 2})
    assert figures(snapshot(only_write(out)), "email") == (4, 0, 4, 4, 0, 0)
    run(restarted, table, [rec("dispatch", dispatch("c1", "m5", ago(hours=1)))])
    assert table.loaded() == Counter({key: 2})


def test_cache_capacity_evicts_least_recently_used_clean_contacts_after_a_checkpoint(
    table: Table, clock: Clock
) -> None:
    proc = make(table, clock, cache_capacity=2)
    feed(proc, [rec("dispatch", dispatch(c, "m1", ago(days=2))) for c in ("c1", "c2", "c3")])
    feed(proc, [rec("delivery", interaction("c1", "m1", ago(days=2) + timedelta(minutes=1)))])
    assert len(proc.cache) == 3  # beyond capacity until the checkpoint: all three are dirty

    out = land(proc, table, proc.checkpoint())

    # every dirty contact is written, then the least recently used (c2) leaves the cache
    assert sorted(c.key for c in out.changes) == [key_of("c1"), key_of("c2"), key_of("c3")]
    assert sorted(proc.cache.hot) == [key_of("c1"), key_of("c3")]
    assert table.loaded() == Counter({key_of(c): 1 for c in ("c1", "c2", "c3")})

    out = run(
        proc,
        table,
        [rec("open", interaction(c, "m1", ago(days=1))) for c in ("c1", "c2", "c3")],
    )

    # c2 is read again, from its landed value; c1 and c3 were still cached
    assert table.loaded() == Counter({key_of("c1"): 1, key_of("c2"): 2, key_of("c3"): 1})
    assert figures(snapshot(write_of(out, "c2")), "email") == (1, 0, 1, 1, 0, 0)  # landed dispatch
    assert figures(snapshot(write_of(out, "c1")), "email") == (1, 0, 1, 1, 0, 0)
    assert len(proc.cache) == 2


def test_abandon_forgets_pending_changes_and_cached_contacts(
    proc: EngagementProcessor, table: Table
) -> None:
    key = key_of("c1")
    run(proc, table, engaged_message("c1", "m1", ago(days=2)))
    landed = dict(table.data)

    # Applied but never landed: a tier move, a dead letter, a forwarded entry, a new contact.
    feed(
        proc,
        [
            rec("dispatch", dispatch("c1", "m2", ago(days=1))),
            rec("delivery", interaction("c1", "m2", ago(days=1) + timedelta(minutes=1))),
            rec("dispatch", dispatch("c2", "m1", ago(days=1))),
            rec("bounce", dispatch("c1", "m3", ago(days=1))),
        ],
    )
    proc.apply([rec("dispatch", dispatch("c3", "m1", ago(days=1)))], foreign("c3"))
    assert proc.has_pending and len(proc.cache.dirty) == 2

    proc.abandon()

    assert not proc.has_pending and len(proc.cache) == 0 and proc.cache.dirty == {}
    assert proc.checkpoint() == CheckpointBatch()  # nothing of the abandoned entries
    assert table.data == landed

    # Read again from the last commit: the contact comes from the table, and counts once.
    out = run(
        proc,
        table,
        [
            rec("dispatch", dispatch("c1", "m2", ago(days=1))),
            rec("delivery", interaction("c1", "m2", ago(days=1) + timedelta(minutes=1))),
        ],
    )
    assert table.loaded()[key] == 2
    assert figures(snapshot(only_write(out)), "email") == (2, 0, 2, 1, 0, 0)
    assert out.entries == 2 and out.outcomes == Counter({"applied": 2})
    assert out.records_by_topic == Counter({"dispatch": 1, "delivery": 1})
    assert out.dead_by_code == Counter() and out.forwarded == 0
    assert tier_moves(out) == {
        (None, "very_high", "high", "event"),
        ("email", "very_high", "high", "event"),
    }


def test_a_checkpoint_built_while_everything_is_abandoned_leaves_nothing_behind(
    clock: Clock,
) -> None:
    """The worker builds checkpoint N+1 while N lands; should N be abandoned meanwhile (its
    partitions moved, Kafka failed), N+1 rests on changes that will never land: it must build
    nothing more, and none of its values may be read back as if they had landed."""
    table = Table()
    proc = make(table, clock)
    run(proc, table, [rec("dispatch", dispatch(c, "m1", ago(days=2))) for c in ("c1", "c2")])
    landed = dict(table.data)
    feed(proc, [rec("open", interaction(c, "m1", ago(days=1))) for c in ("c1", "c2")])

    build = proc.start_checkpoint(chunk=1)
    assert build.step()  # c1 built; the landing of the previous checkpoint fails meanwhile
    proc.abandon()
    assert build.void and not build.step()
    assert proc.unlanded == {} and len(proc.cache) == 0

    # The opens are read again: they count, on the landed state, and nothing was lost.
    out = run(proc, table, [rec("open", interaction(c, "m1", ago(days=1))) for c in ("c1", "c2")])
    assert sorted(c.key for c in out.changes) == [key_of("c1"), key_of("c2")]
    for contact in ("c1", "c2"):
        assert figures(snapshot(write_of(out, contact)), "email") == (1, 0, 1, 1, 0, 0)
    assert landed.keys() == table.data.keys()


def test_abandon_of_partitions_forgets_only_their_cached_contacts_when_nothing_is_pending(
    proc: EngagementProcessor, table: Table
) -> None:
    a, b = "c1", next(c for c in (f"c{i}" for i in range(2, 100)) if home(c) != home("c1"))
    run(proc, table, [rec("dispatch", dispatch(c, "m1", ago(days=2))) for c in (a, b)])

    proc.abandon(frozenset({home(a)}))  # a revoked partition, after its last checkpoint

    assert list(proc.cache.hot) == [key_of(b)]
    run(proc, table, [rec("open", interaction(c, "m1", ago(days=1))) for c in (a, b)])
    assert table.loaded() == Counter({key_of(a): 2, key_of(b): 1})

    # With changes pending, whatever the partitions, everything is forgotten.
    feed(proc, [rec("dispatch", dispatch(b, "m2", ago(days=1)))])
    proc.abandon(frozenset({home(a)}))
    assert len(proc.cache) == 0 and proc.checkpoint().changes == []


def test_a_checkpoint_built_in_chunks_gives_the_same_batch_as_one_built_at_once(
    clock: Clock,
) -> None:
    records = [
        *engaged_message("c1", "m1", ago(days=3)),
        *[rec("dispatch", dispatch(f"c{i}", "m1", ago(days=2))) for i in range(2, 6)],
        rec("bounce", dispatch("c1", "m2", ago(days=1))),
    ]
    whole_table, stepped_table = Table(), Table()
    whole, stepped = make(whole_table, clock), make(stepped_table, clock)
    feed(whole, records)
    feed(stepped, records)

    expected = whole.checkpoint()
    build = stepped.start_checkpoint(chunk=2)
    progress = []
    while True:
        more = build.step()
        progress.append((more, len(build.batch.changes)))
        if not more:
            break

    assert progress == [(True, 2), (True, 4), (False, 5)]
    assert len(expected.changes) == 5
    assert build.batch.changes == expected.changes
    assert build.batch == expected
    assert not stepped.has_pending and stepped.cache.dirty == {}


def test_the_version_grows_at_each_checkpoint_that_writes_the_contact(
    proc: EngagementProcessor, table: Table, clock: Clock
) -> None:
    key = key_of("c1")
    records = engaged_message("c1", "m1", ago(days=2))
    versions = [only_write(run(proc, table, [record])).version for record in records]
    # the write's time in ms, bumped by one to stay increasing under the same clock
    assert versions == [NOW_MS, NOW_MS + 1, NOW_MS + 2]

    assert run(proc, table, again(records)).changes == []  # no write, no new version
    assert only_write(tick(proc, table, key)).version == NOW_MS + 3

    clock.advance(seconds=5)
    later = only_write(run(proc, table, [rec("dispatch", dispatch("c1", "m2", ago(days=1)))]))
    assert later.version == NOW_MS + 5000

    clock.now = NOW  # a clock that went back: still increasing
    back = only_write(run(proc, table, [rec("dispatch", dispatch("c1", "m3", ago(days=1)))]))
    assert back.version == NOW_MS + 5001

    restarted = make(table, clock)  # the version is read back from the table
    after = only_write(run(restarted, table, [rec("dispatch", dispatch("c1", "m4", ago(days=1)))]))
    assert after.version == NOW_MS + 5002
    assert peek(table.data[key], CFG)[0] == table.stored(key).version == NOW_MS + 5002


def test_snapshot_of_a_stored_contact_is_what_its_checkpoint_wrote_to_redis(
    proc: EngagementProcessor, table: Table
) -> None:
    out = run(
        proc,
        table,
        [
            *engaged_message("c1", "m1", ago(days=3)),
            rec("dispatch", dispatch("c1", "m2", ago(days=2), channel="sms")),
        ],
    )
    key = key_of("c1")

    # what a Redis rebuild writes from the table is what the checkpoint wrote
    assert proc.snapshot_of(key, table.stored(key), NOW) == only_write(out)


def test_ticks_are_one_envelope_per_owning_partition(proc: EngagementProcessor) -> None:
    # twelve contacts of one org, and one of an org whose table key is escaped
    contacts = [(ORG, f"c{i}") for i in range(1, 13)] + [("acme:eu", "c1")]
    keys = [key_of(contact, org) for org, contact in contacts]
    owners = [home(contact, org) for org, contact in contacts]
    assert len(set(owners)) > 1

    envelopes = proc.ticks(keys)

    assert sorted(e.partition for e in envelopes if e.partition is not None) == sorted(set(owners))
    for item in envelopes:
        assert (item.topic, item.key, item.headers) == (ENVELOPE_TOPIC, None, [])
        entries = envelope.decode(item.value)
        assert all(e.kind == KIND_TICK and e.value == b"" for e in entries)
        assert [e.key for e in entries] == [
            k for k, o in zip(keys, owners, strict=True) if o == item.partition
        ]


# ------------------------------------------------------- bugs found while writing these
def test_redis_version_keeps_growing_after_the_table_entry_was_dropped(
    proc: EngagementProcessor, table: Table, clock: Clock
) -> None:
    """Redis refuses a snapshot older than the version it holds (DELETE_LUA keeps that version
    for a day after a removal), so the versions of one contact must never go backwards."""
    key = key_of("c1")
    run(proc, table, [rec("dispatch", dispatch("c1", "m1", ago(days=2)))])
    first = run(proc, table, [rec("contact", body("c1", ago(days=1), type="delete"))])
    assert key in table.data  # the tombstone stays for the window
    clock.advance(days=90)
    expired = tick(proc, table, key)
    assert key not in table.data  # the tombstone expired: the entry (and its version) is gone
    removal = only_write(expired)
    assert removal.snapshot is None
    assert removal.version > only_write(first).version

    clock.advance(seconds=1)  # a later checkpoint (versions are the write's time in ms)
    new = run(proc, table, [rec("dispatch", dispatch("c1", "m2", clock.now - timedelta(hours=1)))])

    assert only_write(new).version > removal.version, (
        f"new snapshot has version {only_write(new).version}, Redis holds {removal.version} "
        "from the removal and will refuse it"
    )


def test_expiry_tick_of_an_org_id_with_a_colon_updates_that_contact(
    proc: EngagementProcessor, table: Table, clock: Clock
) -> None:
    """SPEC §2 allows any org_id of 1-64 characters; the tick must name the same contact."""
    org = "acme:eu"
    key = key_of("c1", org)
    applied = run(proc, table, [rec("dispatch", dispatch("c1", "m1", ago(days=89), org=org))])
    assert (only_write(applied).org_id, only_write(applied).contact_id) == (org, "c1")
    assert only_change(applied).key == key
    clock.advance(days=2)

    out = tick(proc, table, key)

    write = only_write(out)
    assert (write.org_id, write.contact_id) == (org, "c1")
    assert (
        write.snapshot is not None
        and orjson.loads(unpack_snapshot(write.snapshot))["dispatched"]["total"] == 0
    )
    assert removed(out) == [] and list(table.data) == [key]
    assert table.loaded() == Counter({key: 1})  # the same cached contact, not a new one


def test_contacts_of_different_orgs_never_share_state(
    proc: EngagementProcessor, table: Table
) -> None:
    """Tenants are isolated (SPEC §1, §5): ("a:b", "c") and ("a", "b:c") are two contacts."""
    out = run(
        proc,
        table,
        [
            rec("dispatch", dispatch("c", "m1", ago(days=1), org="a:b")),
            rec("dispatch", dispatch("b:c", "m2", ago(days=1), org="a")),
        ],
    )

    writes = [rendered(c) for c in out.changes]
    assert sorted((w.org_id, w.contact_id) for w in writes) == [("a", "b:c"), ("a:b", "c")]
    assert len({c.key for c in out.changes}) == 2
    for write in writes:
        assert snapshot(write)["dispatched"]["total"] == 1


def test_a_contact_evicted_by_a_checkpoint_still_landing_is_not_read_back_stale(
    table: Table, clock: Clock
) -> None:
    """The agent applies envelopes while the previous checkpoint lands; a contact that
    checkpoint dropped from the cache is read back from its unlanded value, not the store."""
    proc = make(table, clock, cache_capacity=1)
    sent = ago(days=2)
    feed(proc, [rec("dispatch", dispatch("c1", "m1", sent))])
    feed(proc, [rec("dispatch", dispatch("c2", "m1", sent))])
    first = proc.checkpoint()  # c1 is evicted (least recently used); the batch is landing
    assert key_of("c1") not in proc.cache.hot

    feed(proc, [rec("delivery", interaction("c1", "m1", sent + timedelta(minutes=1)))])
    second = proc.checkpoint()
    land(proc, table, first)
    land(proc, table, second)  # landed in order, as agents.engagement does

    # The dispatch of the first checkpoint must survive the second.
    assert table_figures(proc, table, "c1") == (1, 0, 1, 0, 0, 0)


def test_a_contact_removed_by_a_checkpoint_still_landing_is_not_read_back_stale(
    proc: EngagementProcessor, table: Table, clock: Clock
) -> None:
    """Same for a contact whose checkpoint deletes its table entry."""
    key = key_of("c1")
    run(proc, table, engaged_message("c1", "m1", ago(days=89)))
    clock.advance(days=2)
    deliver(proc, only(proc.ticks([key])))
    first = proc.checkpoint()  # everything expired: removed; the batch is landing
    assert tier_moves(first) == {
        (None, "very_high", None, "expiry"),
        ("email", "very_high", None, "expiry"),
    }

    feed(proc, [rec("dispatch", dispatch("c1", "m2", clock.now - timedelta(hours=1)))])
    second = proc.checkpoint()
    land(proc, table, first)
    land(proc, table, second)

    # Those tiers were taken away by the first checkpoint: nothing to take away again.
    assert tier_records(second) == []


def test_the_cache_budget_evicts_the_least_recently_used_holders_of_memory(
    table: Table, clock: Clock
) -> None:
    # Contacts are few but big: a count of 100 would keep them all; the byte budget does not.
    def big_contacts(proc: EngagementProcessor, on: Table) -> None:
        for c in ("c1", "c2", "c3", "c4"):
            feed(
                proc,
                [rec("dispatch", dispatch(c, f"m{i}", ago(days=2, hours=i))) for i in range(12)],
            )
        land(proc, on, proc.checkpoint())

    probe = make(Table(), clock)
    big_contacts(probe, Table())
    one = max(hot.size for hot in probe.cache.hot.values())
    assert one > estimated_bytes(0)

    proc = make(table, clock, cache_capacity=100, cache_budget_bytes=int(2.5 * one))
    big_contacts(proc, table)
    assert sorted(proc.cache.hot) == sorted([key_of("c3"), key_of("c4")])
    assert proc.cache.bytes == sum(hot.size for hot in proc.cache.hot.values()) <= 2.5 * one
    # each size is estimated from what was written for the contact
    assert proc.cache.hot[key_of("c4")].size == estimated_bytes(len(table.data[key_of("c4")]))

    # An evicted contact is read back from its landed value, exactly.
    out = run(proc, table, [rec("open", interaction("c1", "m1", ago(days=1)))])
    assert table.loaded()[key_of("c1")] == 2
    assert figures(snapshot(write_of(out, "c1")), "email")[0] == 12
    assert proc.cache.bytes == sum(hot.size for hot in proc.cache.hot.values())


def test_the_cache_forgets_what_it_held_per_partition() -> None:
    cache = ContactCache(CFG, lambda _p, _k: None, capacity=10, budget_bytes=None)
    a = cache.get(b"a", 0, "o", "a")
    cache.get(b"b", 1, "o", "b")
    cache.landed(b"a", b"x" * 100)
    assert cache.bytes == estimated_bytes(100) + estimated_bytes(0)
    assert a.size == estimated_bytes(100)
    cache.forget(frozenset({0}))
    assert list(cache.hot) == [b"b"] and cache.bytes == estimated_bytes(0)
    cache.landed(b"b", None)  # removed from the table
    assert cache.bytes == 0 and len(cache) == 0


def test_parts_of_a_checkpoint_hold_each_output_and_change_once_in_order(
    clock: Clock,
) -> None:
    """The worker lands a checkpoint in parts while it builds the rest (`take_part`): the
    parts must hold every output and contact change of the checkpoint exactly once, in the
    order built, the outputs of the applied entries (dispatch statuses, dead letters) in the
    first part, ahead of every contact's state; the counters stay on the whole batch."""
    records = [
        *engaged_message("c1", "m1", ago(days=3)),
        *[rec("dispatch", dispatch(f"c{i}", "m1", ago(days=2))) for i in range(2, 8)],
        rec("bounce", dispatch("c1", "m2", ago(days=1))),
        rec("open", b"{not json", partition=0),
    ]
    whole_table, parted_table = Table(), Table()
    whole, parted = make(whole_table, clock), make(parted_table, clock)
    feed(whole, records)
    feed(parted, records)
    expected = whole.checkpoint()
    applied_outputs = len(parted.pending.outputs)
    assert applied_outputs > 0  # the dead letter at least

    build = parted.start_checkpoint(chunk=2)
    parts = []
    while True:
        more = build.step()
        if build.unparted >= 3 or not more:
            parts.append(build.take_part())
        if not more:
            break

    assert [len(p.changes) for p in parts] == [4, 3]  # c1-c7, in steps of 2
    assert [c for p in parts for c in p.changes] == expected.changes
    assert [o for p in parts for o in p.outputs] == expected.outputs
    assert parts[0].outputs[:applied_outputs] == expected.outputs[:applied_outputs]
    assert all(not p.outcomes and not p.dead_by_code and p.entries == 0 for p in parts)
    assert build.batch.entries == expected.entries == len(records)
    assert build.batch.dead_by_code == expected.dead_by_code
    assert build.take_part().changes == []  # nothing left


def test_remembered_contact_locations_are_the_functions_and_bounded() -> None:
    """The processor remembers (table key, partition) per contact: always what the key and
    partition functions give, and never more than LOCATED_MAX contacts."""
    processor = make(Table(), Clock(NOW))
    ids = [("org-1", "c-1"), ("o:r%g", "c 2"), ("org-1", "c-1"), ("é", "ид")]
    for org_id, contact_id in ids:
        key, partition = processor._locate(org_id, contact_id)
        assert key == state_key(org_id, contact_id)
        assert partition == partition_for(contact_key(org_id, contact_id), PARTITIONS)
    for i in range(LOCATED_MAX + 5):
        processor._locate("org-bulk", f"c-{i}")
    assert len(processor._located) <= LOCATED_MAX
    key, partition = processor._locate("org-bulk", "c-7")
    assert partition == partition_for(contact_key("org-bulk", "c-7"), PARTITIONS)
    assert key == state_key("org-bulk", "c-7")


def test_a_damaged_envelope_counts_the_entries_before_the_damage_then_says_so(
    proc: EngagementProcessor, table: Table
) -> None:
    """The agent logs and passes an envelope whose bytes stop being one (`EnvelopeError`); what
    the processor read before the damage is applied and lands with the next checkpoint."""
    first = rec("dispatch", dispatch("c-1", "m-1", ago(days=1)))
    second = rec("dispatch", dispatch("c-1", "m-2", ago(days=1)))
    raw = envelope.encode([first, second])
    with pytest.raises(envelope.EnvelopeError, match="truncated"):
        proc.apply_envelope(raw[:-3], home("c-1"))
    assert proc.pending.entries == 1
    land(proc, table, proc.checkpoint())
    assert set(table.stored(key_of("c-1")).state.messages) == {"m-1"}


# ---------------------------------------------------------------- validated by the ingest
def _validated(entry: Entry, event: bytes) -> Entry:
    return Entry(
        KIND_VALIDATED,
        entry.topic,
        entry.partition,
        entry.offset,
        entry.key,
        entry.value,
        [(VALIDATED_HEADER, event), *entry.headers],
    )


def _state_after(records: list[Entry]) -> bytes:
    table, clock = Table(), Clock(NOW)
    proc = make(table, clock)
    for partition, entries in itertools.groupby(records, key=lambda e: home_of(e)):
        proc.apply_envelope(envelope.encode(list(entries)), partition)
    land(proc, table, proc.checkpoint())
    return table.data[key_of("c1")]


def home_of(entry: Entry) -> int:
    return route(entry.value, entry.partition, PARTITIONS)


def test_the_worker_applies_the_event_the_ingest_validated_without_reading_the_record() -> None:
    records = engaged_message("c1", "m1", ago(days=1))
    as_read = _state_after(records)
    framed = [ingested(r)[1] for r in records]
    if not INGEST_VALIDATES[0]:
        framed = [
            _validated(
                r, read(r.value, 0, PARTITIONS, NAMES.short(r.topic), CFG.channels)[1] or b""
            )
            for r in records
        ]
    assert {e.kind for e in framed} == {KIND_VALIDATED}
    assert _state_after(framed) == as_read
    # The value is not read again: the same events with their values replaced count the same.
    blanked = [
        _validated(
            Entry(
                KIND_RECORD,
                e.topic,
                e.partition,
                e.offset,
                e.key,
                orjson.dumps({"org_id": ORG, "contact_id": "c1"}),
                [],
            ),
            e.headers[0][1],
        )
        for e in framed
    ]
    assert _state_after(blanked) == as_read


def test_a_damaged_validated_event_is_read_from_the_record() -> None:
    records = engaged_message("c1", "m1", ago(days=1))
    damaged = [_validated(r, b"\x01\x00") for r in records]
    assert _state_after(damaged) == _state_after(records)


def test_a_producers_header_named_like_the_ingests_is_not_trusted() -> None:
    """Only the entry's kind (written by the ingest) says a header is the ingest's: a record
    read with a header of that name is read from its value."""
    real = rec("dispatch", dispatch("c1", "m1", ago(days=1)))
    other = read(
        orjson.dumps(dispatch("c1", "m-forged", ago(days=2))),
        0,
        PARTITIONS,
        "dispatch",
        CFG.channels,
    )[1]
    assert other is not None
    forged = Entry(
        KIND_RECORD,
        real.topic,
        real.partition,
        real.offset,
        real.key,
        real.value,
        [(VALIDATED_HEADER, other)],
    )
    table, clock = Table(), Clock(NOW)
    proc = make(table, clock)
    proc.apply_envelope(envelope.encode([forged]), home("c1"))
    land(proc, table, proc.checkpoint())
    assert set(table.stored(key_of("c1")).state.messages) == {"m1"}
