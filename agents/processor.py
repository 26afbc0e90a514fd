"""One batch of envelope entries in, everything the worker must write out: the agent's whole logic.

No Faust, Kafka or Redis here: the agent hands over the entries of a batch of envelopes
(``streams.envelope``), and performs what comes back (table writes, records to publish, Redis
operations). That keeps the plumbing thin and lets the whole batch path be tested without a
broker. Every entry names the partition of the envelope it came in (``home``), which owns its
contact: the ingest stage routed it there.

A batch groups records by contact, so each touched contact is decoded once, updated by all its
records, snapshotted once and written once, however many of its records the batch holds.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

import orjson

from agents.stored import Published, StoredContact, pack, unpack
from counting import (
    ContactState,
    CountingConfig,
    apply_event,
    build_snapshot,
    expire,
    next_expiry,
    tier_changes,
    tiers,
)
from engagement_monitor import keyspace as ks
from engagement_monitor.keyspace import split_state_key, state_key
from models.events import RecordRejected, parse_record
from streams.envelope import KIND_FORWARDED, KIND_RECORD, KIND_TICK, Entry, EnvelopeWriter
from streams.partitioning import contact_partition, state_partition
from streams.topics import ENVELOPE_TOPIC, TopicNames

# Header names put on dead letters. Values are UTF-8 text.
H_SOURCE_TOPIC = "em-source-topic"
H_SOURCE_PARTITION = "em-source-partition"
H_SOURCE_OFFSET = "em-source-offset"
H_REASON = "em-reason"
H_CODE = "em-code"
H_RECEIVED_AT = "em-received-at"

Headers = list[tuple[str, bytes]]


@dataclass(slots=True)
class Inbound:
    """One envelope entry: an input record as read, or an expiry tick."""

    topic: str  # full name of the input topic it was read from ("" for a tick)
    key: bytes | None
    value: bytes
    partition: int  # where it was read: input partition and offset
    offset: int
    headers: Headers
    home: int  # the envelope's partition, which owns the contact
    ref: Any = None  # the framework's event of the envelope (write context of table writes)
    kind: int = KIND_RECORD

    @classmethod
    def of(cls, entry: Entry, home: int, ref: Any = None) -> Inbound:
        return cls(
            entry.topic,
            entry.key,
            entry.value,
            entry.partition,
            entry.offset,
            entry.headers,
            home,
            ref,
            entry.kind,
        )


@dataclass(slots=True)
class Outbound:
    topic: str  # short name
    key: bytes | None
    value: bytes
    headers: Headers = field(default_factory=list)
    partition: int | None = None


@dataclass(slots=True)
class RedisOp:
    """Replace (snapshot set) or remove (snapshot None) one contact in Redis."""

    org_id: str
    contact_id: str
    version: int
    snapshot: bytes | None
    segments: list[tuple[str, str]]  # (segment key, member)


@dataclass(slots=True)
class BatchOutput:
    publish: list[Outbound] = field(default_factory=list)
    redis: list[RedisOp] = field(default_factory=list)
    due: dict[bytes, int | None] = field(default_factory=dict)  # key -> next expiry (epoch s)
    records_by_topic: Counter[str] = field(default_factory=Counter)
    dead_by_code: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    tier_changes: Counter[str] = field(default_factory=Counter)
    forwarded: int = 0  # entries on an envelope of the wrong partition, sent to their owner


class StateStore(Protocol):
    """The table, seen by the processor: bytes in, bytes out, writes carry their event."""

    def get(self, key: bytes) -> bytes | None: ...

    def put(self, key: bytes, value: bytes, ref: Any) -> None: ...

    def delete(self, key: bytes, ref: Any) -> None: ...


def dead_letter(
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes,
    headers: Headers,
    reason: str,
    code: str,
    now: datetime,
) -> Outbound:
    """The dead letter of one input record: unchanged, with where it was read and why (SPEC §4).

    `topic` is the input topic's full name, as read, so the record can be replayed as is.
    `em-*` headers the record already carried (a replayed dead letter, say) are replaced.
    """
    kept = [h for h in headers if not h[0].startswith("em-")]
    kept += [
        (H_SOURCE_TOPIC, topic.encode()),
        (H_SOURCE_PARTITION, str(partition).encode()),
        (H_SOURCE_OFFSET, str(offset).encode()),
        (H_REASON, reason.encode()),
        (H_CODE, code.encode()),
        (H_RECEIVED_AT, now.isoformat().encode()),
    ]
    return Outbound("dead-letters", key, value, kept)


def _segments(org_id: str, contact_id: str, published: Published) -> list[tuple[str, str]]:
    return [
        (ks.redis_segment_key(org_id, scope, tier), ks.segment_member(contact_id, rate))
        for scope, (tier, rate) in published.items()
        if tier is not None
    ]


@dataclass(slots=True)
class _Work:
    org_id: str
    contact_id: str
    ref: Any
    events: list[Any] = field(default_factory=list)
    ticks: int = 0


class EngagementProcessor:
    """Applies batches of raw records to contact states held in a `StateStore`."""

    def __init__(
        self,
        cfg: CountingConfig,
        partitions: int,
        store: StateStore,
        names: TopicNames,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.cfg = cfg
        self.partitions = partitions
        self.store = store
        self.names = names
        self.clock = clock

    # ------------------------------------------------------------------ batch
    def process(self, batch: Sequence[Inbound]) -> BatchOutput:
        now = self.clock()
        out = BatchOutput()
        work: dict[bytes, _Work] = {}
        for record in batch:
            self._route(record, now, out, work)
        for key, item in work.items():
            self._apply_contact(key, item, now, out)
        return out

    def _route(
        self, record: Inbound, now: datetime, out: BatchOutput, work: dict[bytes, _Work]
    ) -> None:
        if record.kind == KIND_TICK:
            if record.key is None:
                return
            org_id, contact_id = split_state_key(record.key)
            item = work.get(record.key)
            if item is None:
                item = work[record.key] = _Work(org_id, contact_id, record.ref)
            item.ticks += 1
            out.records_by_topic["expiry-tick"] += 1
            return
        short = self.names.short(record.topic)
        out.records_by_topic[short] += 1
        try:
            event = parse_record(short, record.value, now, self.cfg)
        except RecordRejected as rejected:
            out.publish.append(
                dead_letter(
                    record.topic,
                    record.partition,
                    record.offset,
                    record.key,
                    record.value,
                    record.headers,
                    rejected.reason,
                    rejected.code,
                    now,
                )
            )
            out.dead_by_code[rejected.code] += 1
            return
        home = contact_partition(event.org_id, event.contact_id, self.partitions)
        if home != record.home:
            if record.kind == KIND_FORWARDED:  # forwarded once already: never loop
                reason = (
                    f"forwarded to partition {record.home}, which does not own the contact "
                    f"(partition {home} of {self.partitions}): do all workers have the same "
                    "EM_PARTITIONS?"
                )
                out.publish.append(
                    dead_letter(
                        record.topic,
                        record.partition,
                        record.offset,
                        record.key,
                        record.value,
                        record.headers,
                        reason,
                        "internal",
                        now,
                    )
                )
                out.dead_by_code["internal"] += 1
                return
            # Routed by an ingest with another partition count, say: send it to its owner.
            out.publish.append(self._forward(record, home))
            out.forwarded += 1
            return
        key = state_key(event.org_id, event.contact_id)
        item = work.get(key)
        if item is None:
            item = work[key] = _Work(event.org_id, event.contact_id, record.ref)
        item.ref = record.ref
        item.events.append(event)

    def _forward(self, record: Inbound, home: int) -> Outbound:
        writer = EnvelopeWriter()
        writer.add(
            KIND_FORWARDED,
            record.topic,
            record.partition,
            record.offset,
            record.key,
            record.value,
            record.headers,
        )
        return Outbound(ENVELOPE_TOPIC, None, writer.finish(), [], home)

    # ---------------------------------------------------------------- contact
    def _apply_contact(self, key: bytes, item: _Work, now: datetime, out: BatchOutput) -> None:
        raw = self.store.get(key)
        stored = unpack(raw, self.cfg) if raw is not None else StoredContact(ContactState())
        # SPEC §4's "{org_id}:{contact_id}", unambiguous: `%` and `:` in the org are escaped.
        record_key = key
        state = stored.state
        for event in item.events:
            outcome = apply_event(state, event, now, self.cfg)
            state = outcome.state or state
            out.outcomes[outcome.code] += 1
            if outcome.pending_dropped:
                out.outcomes["pending_dropped"] += outcome.pending_dropped
            for status in outcome.effects:
                out.publish.append(
                    Outbound("dispatch-status", record_key, orjson.dumps(status.model_dump()))
                )
        if item.ticks:
            expire(state, now, self.cfg)
        snapshot = build_snapshot(item.org_id, item.contact_id, state, now, self.cfg)
        current: Published = dict(tiers(snapshot)) if snapshot is not None else {}
        cause: Literal["event", "expiry"] = "event" if item.events else "expiry"
        changes = tier_changes(item.org_id, item.contact_id, stored.published, current, cause, now)
        for change in changes:
            out.publish.append(Outbound("tier-changes", record_key, orjson.dumps(change)))
            out.tier_changes[cause] += 1
        stored.state = state
        stored.published = current
        # The write's time in ms, bumped to stay increasing: Redis refuses older versions (and
        # keeps a removed contact's for a day), so a contact that comes back after its table
        # entry was dropped must not start again from 1.
        stored.version = max(stored.version + 1, int(now.timestamp() * 1000))
        due = next_expiry(state, self.cfg)
        out.due[key] = due
        if state.is_empty():
            self.store.delete(key, item.ref)  # nothing left, not even a tombstone to honour
        else:
            self.store.put(key, pack(stored), item.ref)
        out.redis.append(
            RedisOp(
                item.org_id,
                item.contact_id,
                stored.version,
                orjson.dumps(snapshot) if snapshot is not None else None,
                _segments(item.org_id, item.contact_id, current),
            )
        )

    # --------------------------------------------------------------- rebuild
    def snapshot_of(self, key: bytes, raw: bytes, now: datetime) -> RedisOp:
        """The Redis content for one stored contact, for rebuilding a flushed Redis."""
        stored = unpack(raw, self.cfg)
        org_id, contact_id = split_state_key(key)
        snapshot = build_snapshot(org_id, contact_id, stored.state, now, self.cfg)
        current: Published = dict(tiers(snapshot)) if snapshot is not None else {}
        return RedisOp(
            org_id,
            contact_id,
            stored.version,
            orjson.dumps(snapshot) if snapshot is not None else None,
            _segments(org_id, contact_id, current),
        )

    def ticks(self, keys: Sequence[bytes]) -> list[Outbound]:
        """Envelopes asking the owners of `keys` to re-evaluate them for window expiry."""
        writers: dict[int, EnvelopeWriter] = {}
        for key in keys:
            partition = state_partition(key, self.partitions)
            writer = writers.get(partition)
            if writer is None:
                writer = writers[partition] = EnvelopeWriter()
            writer.add(KIND_TICK, "", -1, -1, key, b"")
        return [
            Outbound(ENVELOPE_TOPIC, None, writer.finish(), [], partition)
            for partition, writer in writers.items()
        ]
