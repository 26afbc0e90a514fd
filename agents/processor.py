"""One batch of raw records in, everything the worker must write out: the agent's whole logic.

No Faust, Kafka or Redis here: the agent hands over a batch, and performs what comes back
(table writes, records to publish, Redis operations). That keeps the plumbing thin and lets the
whole batch path be tested without a broker.

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
from streams.partitioning import contact_partition, state_partition

# Header names put on dead letters and re-keyed records. Values are UTF-8 text.
H_SOURCE_TOPIC = "em-source-topic"
H_SOURCE_PARTITION = "em-source-partition"
H_SOURCE_OFFSET = "em-source-offset"
H_REASON = "em-reason"
H_CODE = "em-code"
H_RECEIVED_AT = "em-received-at"
H_KIND = "em-kind"
KIND_TICK = b"expiry-tick"

Headers = list[tuple[str, bytes]]


@dataclass(slots=True)
class Inbound:
    """One consumed record, as the agent saw it."""

    topic: str  # short name of the topic it was read from (e.g. "open", "internal.rekey")
    key: bytes | None
    value: bytes
    partition: int
    offset: int
    headers: Headers
    ref: Any = None  # the framework's event, handed back on table writes (write context)


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
    rekeyed: int = 0


class StateStore(Protocol):
    """The table, seen by the processor: bytes in, bytes out, writes carry their event."""

    def get(self, key: bytes) -> bytes | None: ...

    def put(self, key: bytes, value: bytes, ref: Any) -> None: ...

    def delete(self, key: bytes, ref: Any) -> None: ...


def _header(headers: Headers, name: str) -> bytes | None:
    for key, value in headers:
        if key == name:
            return value
    return None


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
        rekey_topic: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.cfg = cfg
        self.partitions = partitions
        self.store = store
        self.rekey_topic = rekey_topic
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
        topic = record.topic
        if topic == self.rekey_topic:
            if _header(record.headers, H_KIND) == KIND_TICK and record.key is not None:
                org_id, contact_id = split_state_key(record.key)
                item = work.get(record.key)
                if item is None:
                    item = work[record.key] = _Work(org_id, contact_id, record.ref)
                item.ticks += 1
                out.records_by_topic["expiry-tick"] += 1
                return
            original = _header(record.headers, H_SOURCE_TOPIC)
            out.records_by_topic[topic] += 1  # already counted under its own topic once
            topic = original.decode() if original else ""
        else:
            out.records_by_topic[topic] += 1
        try:
            event = parse_record(topic, record.value, now, self.cfg)
        except RecordRejected as rejected:
            self._dead_letter(record, rejected.reason, rejected.code, now, out)
            return
        home = contact_partition(event.org_id, event.contact_id, self.partitions)
        if home != record.partition:
            if record.topic == self.rekey_topic:  # cannot happen with our own producer
                self._dead_letter(
                    record, "re-keyed record on a foreign partition", "internal", now, out
                )
                return
            out.publish.append(self._rekeyed(record, event.org_id, event.contact_id, home))
            out.rekeyed += 1
            return
        key = state_key(event.org_id, event.contact_id)
        item = work.get(key)
        if item is None:
            item = work[key] = _Work(event.org_id, event.contact_id, record.ref)
        item.ref = record.ref
        item.events.append(event)

    def _rekeyed(self, record: Inbound, org_id: str, contact_id: str, home: int) -> Outbound:
        # `em-*` headers on a record from outside (a replayed dead letter, say) are stale: the
        # record's origin is where it was read now.
        headers = [h for h in record.headers if not h[0].startswith("em-")] + [
            (H_SOURCE_TOPIC, record.topic.encode()),
            (H_SOURCE_PARTITION, str(record.partition).encode()),
            (H_SOURCE_OFFSET, str(record.offset).encode()),
        ]
        return Outbound(
            self.rekey_topic, state_key(org_id, contact_id), record.value, headers, home
        )

    def _dead_letter(
        self, record: Inbound, reason: str, code: str, now: datetime, out: BatchOutput
    ) -> None:
        headers = [h for h in record.headers if not h[0].startswith("em-")]
        # Only our own re-key topic carries a trustworthy origin in `em-source-*` headers.
        origin = record.headers if record.topic == self.rekey_topic else []
        source_topic = _header(origin, H_SOURCE_TOPIC) or record.topic.encode()
        partition = _header(origin, H_SOURCE_PARTITION) or str(record.partition).encode()
        offset = _header(origin, H_SOURCE_OFFSET) or str(record.offset).encode()
        headers += [
            (H_SOURCE_TOPIC, source_topic),
            (H_SOURCE_PARTITION, partition),
            (H_SOURCE_OFFSET, offset),
            (H_REASON, reason.encode()),
            (H_CODE, code.encode()),
            (H_RECEIVED_AT, now.isoformat().encode()),
        ]
        out.publish.append(Outbound("dead-letters", record.key, record.value, headers))
        out.dead_by_code[code] += 1

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

    def tick(self, key: bytes) -> Outbound:
        """The record that asks the owner of `key` to re-evaluate it for window expiry."""
        return Outbound(
            self.rekey_topic, key, b"", [(H_KIND, KIND_TICK)], state_partition(key, self.partitions)
        )
