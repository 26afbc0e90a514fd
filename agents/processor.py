"""Envelope entries in, contact changes and records out: the worker's whole logic, with no I/O.

No Faust, Kafka or Redis here. The agent hands over the entries of each envelope with the
partition it came from (``apply``); the processor folds them into decoded contacts held in a
``ContactCache``, collecting the records they cause (dead letters, dispatch statuses, entries
forwarded to their owner). At a checkpoint (``checkpoint``) it says what changed: per
dirty contact the table value to write, the tier changes to publish, and the job of showing
it in Redis (``RedisJob``, rendered by ``render_job``). What to do with that (which keys,
which topics, in what order) is ``agents.checkpoint``'s and ``agents.redis_sink``'s business.

Every entry names the partition of the envelope it came in (``home``), which owns its contact:
the ingest stage routed it there.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Literal

import orjson

from agents.contact_cache import ContactCache, HotContact, Load
from agents.history_view import history_after
from agents.history_view import render as render_history
from agents.org_index import NO_INDEX, OrgIndex, org_index
from agents.stored import Published, StoredContact, pack, unpack
from counting import (
    CountingConfig,
    apply_event,
    build_snapshot,
    current_tiers,
    expire,
    next_expiry,
    tier_changes,
    tiers,
)
from counting.reading import CountedEvent, read_record, read_validated
from counting.send_times import Hours
from counting.timeutil import from_us, to_us
from engagement_monitor.keyspace import split_state_key, state_key
from engagement_monitor.snapshot_codec import pack_snapshot
from models.events import RecordRejected
from streams.dead_letters import DEAD_LETTER_TOPIC, dead_letter_headers
from streams.envelope import (
    KIND_FORWARDED,
    KIND_TICK,
    KIND_VALIDATED,
    Entry,
    EnvelopeReader,
    EnvelopeWriter,
    encode,
)
from streams.partitioning import contact_partition, state_partition
from streams.topics import ENVELOPE_TOPIC, TopicNames

Headers = list[tuple[str, bytes]]


@dataclass(slots=True, init=False)
class Outbound:
    topic: str  # short name
    key: bytes | None
    value: bytes
    headers: Headers = field(default_factory=list)
    partition: int | None = None

    # init=False: a dataclass's generated __init__ runs interpreted even in a compiled module;
    # this one is compiled (`engagement_monitor.native`).
    def __init__(
        self,
        topic: str,
        key: bytes | None,
        value: bytes,
        headers: Headers | None = None,
        partition: int | None = None,
    ) -> None:
        self.topic = topic
        self.key = key
        self.value = value
        self.headers = [] if headers is None else headers
        self.partition = partition


@dataclass(slots=True, init=False)
class SnapshotWrite:
    """What Redis must show for one contact: its snapshot (None: remove it) and its tiers.

    The Redis sink alone turns this into keys and segment members.
    """

    org_id: str
    contact_id: str
    version: int
    snapshot: bytes | None  # its stored form (`engagement_monitor.snapshot_codec`)
    tiers: Published
    index: OrgIndex = NO_INDEX  # what the org's overview and search know of it (§7.4)
    history: bytes | None = None  # its tier changes of the window, newest first (§7.4), stored
    # like the snapshot

    # init=False: a dataclass's generated __init__ runs interpreted even in a compiled module;
    # this one is compiled (`engagement_monitor.native`).
    def __init__(
        self,
        org_id: str,
        contact_id: str,
        version: int,
        snapshot: bytes | None,
        tiers: Published,
        index: OrgIndex = NO_INDEX,
        history: bytes | None = None,
    ) -> None:
        self.org_id = org_id
        self.contact_id = contact_id
        self.version = version
        self.snapshot = snapshot
        self.tiers = tiers
        self.index = index
        self.history = history


def snapshot_write(
    org_id: str,
    contact_id: str,
    stored: StoredContact,
    snapshot: dict[str, Any] | None,
    published: Published,
    hours: Hours,
    now: datetime,
) -> SnapshotWrite:
    """What Redis must show for a contact whose snapshot was just built, with the tiers it
    shows: the one place a checkpoint and a Redis rebuild both make it."""
    if snapshot is None:
        return SnapshotWrite(org_id, contact_id, stored.version, None, published)
    packed_history, members = render_history(stored.history, now)
    return SnapshotWrite(
        org_id,
        contact_id,
        stored.version,
        pack_snapshot(orjson.dumps(snapshot)),
        published,
        org_index(snapshot, hours, members),
        packed_history,
    )


@dataclass(slots=True, init=False)
class RedisJob:
    """What a checkpoint asks of Redis for one contact: to show it as its table value says at
    `now_us` (µs since the epoch). Turned into a `SnapshotWrite` (snapshot, history, org
    indexes: the larger part of a checkpoint's work per contact) by `render_job`, in the
    snapshot process (`agents.snapshot_process`) or, without one, in the worker. `shown`: the
    contact has a snapshot (it has tiers); else Redis must show nothing of it (`value` None:
    the table entry is gone too)."""

    org_id: str
    contact_id: str
    version: int
    value: bytes | None
    now_us: int
    shown: bool

    # init=False: a dataclass's generated __init__ runs interpreted even in a compiled module;
    # this one is compiled (`engagement_monitor.native`).
    def __init__(
        self,
        org_id: str,
        contact_id: str,
        version: int,
        value: bytes | None,
        now_us: int,
        shown: bool,
    ) -> None:
        self.org_id = org_id
        self.contact_id = contact_id
        self.version = version
        self.value = value
        self.now_us = now_us
        self.shown = shown

    def removal(self) -> SnapshotWrite:
        """The write that removes what Redis shows of the contact (for a job not `shown`)."""
        return SnapshotWrite(self.org_id, self.contact_id, self.version, None, {})


def render_job(job: RedisJob, cfg: CountingConfig) -> SnapshotWrite:
    """The Redis content of one job: what `EngagementProcessor.snapshot_of` gives for the
    stored contact at the job's time (the tiers shown are the snapshot's own, which are the
    ones the checkpoint stored and published: `counting.current_tiers`)."""
    if job.value is None or not job.shown:
        return job.removal()
    stored = unpack(job.value, cfg)
    now = from_us(job.now_us)
    hours: Hours = {}
    snapshot = build_snapshot(job.org_id, job.contact_id, stored.state, now, cfg, hours)
    current: Published = dict(tiers(snapshot)) if snapshot is not None else {}
    return snapshot_write(job.org_id, job.contact_id, stored, snapshot, current, hours, now)


def render_jobs(jobs: Sequence[RedisJob], cfg: CountingConfig) -> list[SnapshotWrite]:
    return [render_job(job, cfg) for job in jobs]


@dataclass(slots=True, init=False)
class ContactChange:
    """One dirty contact at a checkpoint: the table value (None: delete the entry), where its
    changelog record goes, its Redis write and when it next needs an expiry tick."""

    key: bytes
    partition: int
    value: bytes | None
    redis: RedisJob
    due: int | None

    # init=False: a dataclass's generated __init__ runs interpreted even in a compiled module;
    # this one is compiled (`engagement_monitor.native`).
    def __init__(
        self,
        key: bytes,
        partition: int,
        value: bytes | None,
        redis: RedisJob,
        due: int | None,
    ) -> None:
        self.key = key
        self.partition = partition
        self.value = value
        self.redis = redis
        self.due = due


@dataclass(slots=True)
class CheckpointBatch:
    """Everything one checkpoint writes, and the counters the worker exports for it."""

    outputs: list[Outbound] = field(default_factory=list)
    changes: list[ContactChange] = field(default_factory=list)
    entries: int = 0
    records_by_topic: Counter[str] = field(default_factory=Counter)
    dead_by_code: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    tier_changes: Counter[str] = field(default_factory=Counter)
    forwarded: int = 0  # entries on an envelope of the wrong partition, sent to their owner
    # Its Redis jobs being rendered ahead of their write (`agents.checkpoint.prepare_redis`).
    redis_ticket: Any = None


def dead_letter(
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes,
    headers: Sequence[tuple[str, bytes]],
    reason: str,
    code: str,
    now: datetime,
) -> Outbound:
    """The dead letter of one input record (`streams.dead_letters`)."""
    return Outbound(
        DEAD_LETTER_TOPIC,
        key,
        value,
        dead_letter_headers(topic, partition, offset, headers, reason, code, now),
    )


# The `em_records_in_total` label of expiry ticks (entries of no input topic).
TICK_TOPIC = "expiry-tick"

# Outcomes that return before touching the state: the contact need not be written again.
_UNTOUCHED = frozenset({"duplicate", "too_old", "dropped_deleted"})


@lru_cache(maxsize=262_144)
def _locate(org_id: str, contact_id: str, partitions: int) -> tuple[bytes, int]:
    """(table key, owning partition) of a contact; the same contacts come back all day."""
    return state_key(org_id, contact_id), contact_partition(org_id, contact_id, partitions)


# Contacts whose (table key, partition) a processor remembers: a contact's events come in runs,
# and building the key and hashing it cost ~0.5-1.5 µs an event (py-spy --native: 4 % of
# applying); a dictionary hit costs a tenth of that. Cleared when full: pure, never stale.
LOCATED_MAX = 200_000


class EngagementProcessor:
    """Folds envelope entries into cached contact states; builds checkpoints from them."""

    def __init__(
        self,
        cfg: CountingConfig,
        partitions: int,
        names: TopicNames,
        load: Load,
        *,
        cache_capacity: int = 100_000,
        cache_budget_bytes: int | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.cfg = cfg
        self.partitions = partitions
        self.names = names
        self.clock = clock
        self.load = load
        self.cache = ContactCache(cfg, self._load, cache_capacity, cache_budget_bytes)
        # Values of checkpoints built but not yet landed in the table: a contact the cache
        # dropped meanwhile (evicted, or removed) must be read back from here, not from the
        # store, which is written only when its checkpoint lands (read-your-writes).
        self.unlanded: dict[bytes, bytes | None] = {}
        self.abandoned = 0  # times everything was forgotten (see CheckpointBuild.step)
        self.pending = CheckpointBatch()
        self.pending_since: float | None = None  # monotonic time of the oldest pending entry
        self._short: dict[str, str] = {}
        self._located: dict[tuple[str, str], tuple[bytes, int]] = {}

    def _locate(self, org_id: str, contact_id: str) -> tuple[bytes, int]:
        ids = (org_id, contact_id)
        found = self._located.get(ids)
        if found is None:
            located = self._located
            if len(located) >= LOCATED_MAX:
                located.clear()
            found = located[ids] = _locate(org_id, contact_id, self.partitions)
        return found

    def _load(self, partition: int, key: bytes) -> bytes | None:
        unlanded = self.unlanded
        if key in unlanded:
            return unlanded[key]
        return self.load(partition, key)

    # ------------------------------------------------------------------ apply
    @property
    def has_pending(self) -> bool:
        return self.pending_since is not None

    def apply(self, entries: Iterable[Entry], home: int) -> int:
        """Fold entries into the cache as if they came in one envelope (tests, tools)."""
        return self.apply_envelope(encode(entries), home)

    def apply_envelope(self, data: bytes, home: int) -> int:
        """Fold one envelope's entries into the cache; the number of entries.

        Raises ``EnvelopeError`` where its bytes stop being an envelope, the entries before the
        damage applied (and counted: they land with the next checkpoint)."""
        reader = EnvelopeReader(data)
        now = self.clock()
        pending = self.pending
        # Tallied per envelope in plain dicts (compiled dict operations), added to the batch's
        # Counters once: a Counter's `+=` per event is a generic call twice over.
        by_topic: dict[str, int] = {}
        outcomes: dict[str, int] = {}
        n = 0
        try:
            while reader.next():
                n += 1
                if reader.kind == KIND_TICK:
                    self._tick(reader.key(), now, by_topic)
                else:
                    self._record(reader, home, now, pending, by_topic, outcomes)
        finally:
            if n:
                pending.entries += n
                pending.records_by_topic.update(by_topic)
                pending.outcomes.update(outcomes)
                if self.pending_since is None:
                    self.pending_since = time.monotonic()
        return n

    def _tick(self, key: bytes | None, now: datetime, by_topic: dict[str, int]) -> None:
        by_topic[TICK_TOPIC] = by_topic.get(TICK_TOPIC, 0) + 1
        if key is None:
            return
        org_id, contact_id = split_state_key(key)
        hot = self.cache.get(key, state_partition(key, self.partitions), org_id, contact_id)
        expire(hot.stored.state, now, self.cfg)
        self.cache.touch(key, hot, by_event=False)

    def _record(
        self,
        reader: EnvelopeReader,
        home: int,
        now: datetime,
        pending: CheckpointBatch,
        by_topic: dict[str, int],
        outcomes: dict[str, int],
    ) -> None:
        topic = reader.topic
        short = self._short.get(topic)
        if short is None:
            short = self._short[topic] = self.names.short(topic)
        by_topic[short] = by_topic.get(short, 0) + 1
        event: CountedEvent | None = None
        if reader.kind == KIND_VALIDATED:  # checked by the ingest but for the time limit
            event = read_validated(reader.validated, now, self.cfg)
        if event is None:
            try:
                event = read_record(short, reader.value, now, self.cfg)
            except RecordRejected as rejected:
                self._reject(reader.entry(), rejected.reason, rejected.code, now, pending)
                return
        key, owner = self._locate(event.org_id, event.contact_id)
        if owner != home:
            if reader.kind == KIND_FORWARDED:  # forwarded once already: never loop
                reason = (
                    f"forwarded to partition {home}, which does not own the contact "
                    f"(partition {owner} of {self.partitions}): do all workers have the same "
                    "EM_PARTITIONS?"
                )
                self._reject(reader.entry(), reason, "internal", now, pending)
                return
            # Routed by an ingest with another partition count, say: send it to its owner.
            pending.outputs.append(_forward(reader.entry(), owner))
            pending.forwarded += 1
            return
        hot = self.cache.get(key, owner, event.org_id, event.contact_id)
        stored = hot.stored
        outcome = apply_event(stored.state, event, now, self.cfg)
        if outcome.state is not None:
            stored.state = outcome.state
        code = outcome.code
        outcomes[code] = outcomes.get(code, 0) + 1
        if outcome.pending_dropped:
            dropped = outcomes.get("pending_dropped", 0)
            outcomes["pending_dropped"] = dropped + outcome.pending_dropped
        if code in _UNTOUCHED:
            return
        for status in outcome.effects:
            pending.outputs.append(
                Outbound("dispatch-status", key, orjson.dumps(status.model_dump()))
            )
        self.cache.touch(key, hot, by_event=True)

    def _reject(
        self, entry: Entry, reason: str, code: str, now: datetime, pending: CheckpointBatch
    ) -> None:
        pending.outputs.append(
            dead_letter(
                entry.topic,
                entry.partition,
                entry.offset,
                entry.key,
                entry.value,
                entry.headers,
                reason,
                code,
                now,
            )
        )
        pending.dead_by_code[code] += 1

    # ------------------------------------------------------------- checkpoint
    def checkpoint(self) -> CheckpointBatch:
        """What the pending entries changed, for `agents.checkpoint` to write; the cache's
        contacts are clean (and their published tiers and versions advanced) afterwards.

        The batch must then be landed (and `landed` called) or the processor `abandon`ed: its
        tier changes are already recorded as published in the cached states.
        """
        build = self.start_checkpoint()
        while build.step():
            pass
        return build.batch

    def start_checkpoint(self, chunk: int = 500) -> CheckpointBuild:
        """`checkpoint` in steps of `chunk` contacts, so a caller can let others run between
        them (a checkpoint of 20,000 contacts takes the better part of a second)."""
        batch, self.pending = self.pending, CheckpointBatch()
        self.pending_since = None
        return CheckpointBuild(self, batch, list(self.cache.take_dirty().items()), chunk)

    def _change(
        self, key: bytes, hot: HotContact, now: datetime, now_us: int, batch: CheckpointBatch
    ) -> ContactChange:
        """The contact's table value, tier changes and Redis job. Its snapshot is not built
        here: only its tiers (`current_tiers`), which are published and stored; the snapshot,
        history and org indexes are built from the value by whoever renders the job."""
        stored, state = hot.stored, hot.stored.state
        current = current_tiers(hot.org_id, state, now, self.cfg)
        cause: Literal["event", "expiry"] = "event" if hot.by_event else "expiry"
        hot.by_event = False
        changes = tier_changes(hot.org_id, hot.contact_id, stored.published, current, cause, now)
        for change in changes:
            batch.outputs.append(Outbound("tier-changes", key, orjson.dumps(change)))
            batch.tier_changes[cause] += 1
        if changes or stored.history:
            stored.history = history_after(stored.history, changes, now, self.cfg)
        stored.published = current
        # The write's time in ms, bumped to stay increasing: Redis refuses older versions (and
        # keeps a removed contact's for a day), so a contact that comes back after its table
        # entry was dropped must not start again from 1.
        stored.version = max(stored.version + 1, now_us // 1000)
        due = next_expiry(state, self.cfg)
        # Nothing left, not even a tombstone to honour: the table entry goes.
        value = None if state.is_empty() else pack(stored, due)
        # A contact has a snapshot exactly when it has tiers (the overall scope at least).
        job = RedisJob(hot.org_id, hot.contact_id, stored.version, value, now_us, bool(current))
        return ContactChange(key, hot.partition, value, job, due)

    def landed(self, batch: CheckpointBatch) -> None:
        """The batch's values are in the table now: reads may go to the store again (unless a
        later checkpoint, still landing, wrote the contact since)."""
        unlanded = self.unlanded
        for change in batch.changes:
            if change.key in unlanded and unlanded[change.key] is change.value:
                del unlanded[change.key]

    def abandon(self, partitions: frozenset[int] | None = None) -> None:
        """Forget what is pending and the cached contacts (of these partitions, or all): the
        records they came from are read again from the last commit."""
        if partitions is None or self.has_pending:
            self.pending = CheckpointBatch()
            self.pending_since = None
            self.cache.forget(None)
            self.unlanded.clear()
            self.abandoned += 1  # a checkpoint being built now is void: it writes nothing more
        else:
            self.cache.forget(partitions)

    # --------------------------------------------------------------- rebuild
    def snapshot_of(self, key: bytes, stored: StoredContact, now: datetime) -> SnapshotWrite:
        """The Redis content for one stored contact, for rebuilding a flushed Redis."""
        org_id, contact_id = split_state_key(key)
        hours: Hours = {}
        snapshot = build_snapshot(org_id, contact_id, stored.state, now, self.cfg, hours)
        current: Published = dict(tiers(snapshot)) if snapshot is not None else {}
        return snapshot_write(org_id, contact_id, stored, snapshot, current, hours, now)

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


class CheckpointBuild:
    """A checkpoint being built; `step` builds the next chunk of contacts."""

    def __init__(
        self,
        processor: EngagementProcessor,
        batch: CheckpointBatch,
        dirty: list[tuple[bytes, HotContact]],
        chunk: int,
    ) -> None:
        self.processor = processor
        self.batch = batch
        self.dirty = dirty
        self.chunk = chunk
        self.done = 0
        self.now = processor.clock()
        self.now_us = to_us(self.now)
        self.epoch = processor.abandoned
        self._parted = (0, 0)  # (outputs, changes) of `batch` already taken as parts

    @property
    def void(self) -> bool:
        """The processor forgot everything since this build began (its previous checkpoint
        was abandoned): what it would build rests on changes that will never land."""
        return self.epoch != self.processor.abandoned

    @property
    def unparted(self) -> int:
        """Contacts built and not yet taken as a part."""
        return len(self.batch.changes) - self._parted[1]

    def take_part(self) -> CheckpointBatch:
        """The outputs and contact changes built since the last part, to land while the rest
        is built (`agents.engagement`). Parts land in order, and the checkpoint's envelopes
        are acknowledged only after the last one: a crash between parts replays them onto
        contacts some of which are landed, which changes nothing (as a crash between the
        changelog and the acks does). The first part carries the outputs gathered while the
        entries were applied (dead letters, dispatch statuses), ahead of any contact's state;
        the counters stay on `batch`, counted once with the last part."""
        outputs, changes = self.batch.outputs, self.batch.changes
        first_output, first_change = self._parted
        self._parted = (len(outputs), len(changes))
        return CheckpointBatch(outputs[first_output:], changes[first_change:])

    def step(self) -> bool:
        """Build the next chunk; True while contacts remain (False at once once void)."""
        if self.void:
            return False
        processor, batch, cache = self.processor, self.batch, self.processor.cache
        end = min(self.done + self.chunk, len(self.dirty))
        unlanded = processor.unlanded
        for key, hot in self.dirty[self.done : end]:
            change = processor._change(key, hot, self.now, self.now_us, batch)
            batch.changes.append(change)
            unlanded[key] = change.value
            cache.landed(key, change.value)
        self.done = end
        if end < len(self.dirty):
            return True
        cache.trim()
        return False


def _forward(entry: Entry, owner: int) -> Outbound:
    writer = EnvelopeWriter()
    writer.add_entry(replace(entry, kind=KIND_FORWARDED))
    return Outbound(ENVELOPE_TOPIC, None, writer.finish(), [], owner)
