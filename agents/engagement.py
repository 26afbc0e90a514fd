"""The Faust side of the worker: one agent, two timers and two web pages around the processor.

Everything here is plumbing. The batch logic is `agents.processor`, the counting rules are
`counting`; this module only moves bytes between Kafka, the table and Redis, and keeps the
expiry index and the Redis sentinels up to date.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Awaitable, Sequence
from datetime import UTC, datetime
from typing import Any, cast

from faust.streams import _current_event
from faust.types import FutureMessage
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from agents import metrics as m
from agents.crash import CrashPoint
from agents.due_index import DueIndex
from agents.landing import confirmed, land
from agents.processor import (
    BatchOutput,
    EngagementProcessor,
    Inbound,
    Outbound,
    RedisOp,
    dead_letter,
)
from agents.redis_outage import REDIS_ERRORS, OutageAwareSnapshots, RedisHealth
from agents.redis_sink import RedisSink
from agents.stored import unpack
from counting import next_expiry
from engagement_monitor.settings import Settings
from streams import envelope
from streams.app import Streams
from streams.contact_table import ContactTable
from streams.faust_seams import GuardedConsumer
from streams.ingest import Ingest
from streams.partitioning import state_partition

log = logging.getLogger("engagement_monitor.worker")

REBUILD_CHUNK = 500


class TableStore:
    """The processor's `StateStore` over the contact table, writing behind until `flush`.

    Writes are held so that the batch's outputs reach Kafka before the state that records them
    as published (see `agents.landing`); reads see the held values, so a batch is consistent.
    Each write runs with the contact's own event as Faust's current event: a batch mixes
    partitions, and Faust's RocksDB store files a key under the current event's partition.
    """

    def __init__(self, table: ContactTable) -> None:
        self.table = table
        self._held: dict[bytes, tuple[bytes | None, Any]] = {}

    def get(self, key: bytes) -> bytes | None:
        held = self._held.get(key)
        if held is not None:
            return held[0]
        value: bytes | None = self.table.get(key)
        return value

    def put(self, key: bytes, value: bytes, ref: Any) -> None:
        self._held[key] = (value, ref)

    def delete(self, key: bytes, ref: Any) -> None:
        self._held[key] = (None, ref)

    def drop(self) -> None:
        self._held = {}

    def flush(self) -> list[FutureMessage]:
        held, self._held = self._held, {}
        for key, (value, ref) in held.items():
            token = _current_event.set(weakref.ref(ref))
            try:
                if value is None:
                    self.table.pop(key, None)
                else:
                    self.table[key] = value
            finally:
                _current_event.reset(token)
        return self.table.take_unconfirmed()


class TopicOutputs:
    """`agents.landing.Outputs` over the app's output topics."""

    def __init__(self, streams: Streams) -> None:
        self.topics = streams.outputs
        self.full = streams.names.full

    def send(self, items: Sequence[Outbound]) -> list[Awaitable[Any]]:
        sent: list[Awaitable[Any]] = []
        for item in items:
            topic = self.topics.get(item.topic) or self.topics[self.full(item.topic)]
            sent.append(
                topic.send_soon(
                    key=item.key, value=item.value, headers=item.headers, partition=item.partition
                )
            )
        return sent


class EngagementWorker:
    """Installs the agent, timers and pages on a `Streams` app and holds their shared state."""

    def __init__(self, streams: Streams, settings: Settings) -> None:
        self.streams = streams
        self.settings = settings
        self.app = streams.app
        self.cfg = settings.counting_config()
        self.store = TableStore(streams.contacts)
        self.outputs = TopicOutputs(streams)
        self.processor = EngagementProcessor(
            self.cfg, settings.partitions, self.store, streams.names
        )
        self.sink = RedisSink(
            str(settings.redis_url), settings.app_id, settings.redis_timeout_seconds
        )
        self.redis = RedisHealth()
        self.snapshots = OutageAwareSnapshots(self.sink.apply, self.redis)
        self.guard = cast(GuardedConsumer, self.app.consumer)  # checked by create_app
        self.crash = CrashPoint(settings.crash_at)
        self.ingest = Ingest(
            bootstrap=settings.kafka_bootstrap,
            group_id=f"{settings.app_id}-ingest",
            inputs=streams.names.inputs,
            envelope_topic=streams.names.envelopes,
            partitions=settings.partitions,
            max_records=settings.batch_max_records,
            max_wait_seconds=settings.batch_max_seconds,
            max_record_bytes=settings.max_record_bytes,
            max_envelope_bytes=settings.envelope_max_bytes,
            session_timeout_seconds=settings.session_timeout_seconds,
            dead_letter=self._oversize_letter,
            crash=self.crash,
        )
        # Started and stopped with the app: `App.service` takes an instance as well as a class.
        self.app.service(cast(Any, self.ingest))
        # Set while no batch is landing: handle() awaits only inside land(), so when a timer
        # runs and this is set, no batch is in flight. The app waits for it before its
        # consumer stops (`WorkerApp`).
        self._idle = self.app.landing_idle
        self._guard_seen = (0, 0, 0)
        self._ingest_seen = (0, 0, 0)
        self.due = DueIndex()
        self.indexed: frozenset[int] = frozenset()  # partitions whose due index is built
        self.topics_ready = False
        self.legacy_purged = False  # Redis keys of the pre-v2 layout deleted (once a process)
        self.last_offsets: dict[tuple[str, int], int] = {}
        self._install()

    # ------------------------------------------------------------ wiring
    def _install(self) -> None:
        app, settings = self.app, self.settings

        @app.agent(self.streams.source, name="engagement")
        async def engagement(stream: Any) -> None:
            batches = stream.take_events(
                settings.batch_max_envelopes, within=settings.batch_max_seconds
            )
            try:
                async for events in batches:
                    if self.app.should_stop:
                        # Shutting down: Faust may already have closed the table stores (a
                        # read would then find no state and a write would replace a contact
                        # with a partial one). Leave the batch unprocessed: closing the
                        # generator acks it, but the delivery guard does not count acks of
                        # records the agent did not handle, so whoever owns these partitions
                        # next reads them again, and Faust's shutdown does not wait for them.
                        break
                    await self.handle(events)
            finally:
                await batches.aclose()

        @app.timer(settings.expiry_sweep_seconds, name="expiry_sweep", on_leader=False)  # type: ignore[untyped-decorator]
        async def expiry_sweep() -> None:
            await self.sweep()

        @app.timer(2.0, name="maintenance", on_leader=False)  # type: ignore[untyped-decorator]
        async def maintenance() -> None:
            await self.maintain()

        @app.page("/healthz")
        async def healthz(web: Any, request: Any) -> Any:
            ok, reason = self.health()
            if not ok:
                return web.json({"status": "starting", "detail": reason}, status=503)
            if not self.redis.up:
                # Counting goes on (so not a 503 that would get the worker restarted); what
                # is degraded is Redis, and it is said why and since when.
                body = {"status": "degraded", "detail": self.redis.describe(), "redis": "down"}
                return web.json(body, status=200)
            return web.json({"status": "ok", "detail": reason, "redis": "ok"}, status=200)

        @app.page("/metrics")
        async def metrics_page(web: Any, request: Any) -> Any:
            return web.bytes(
                generate_latest(m.REGISTRY), content_type=CONTENT_TYPE_LATEST.split(";")[0]
            )

        self._agent = engagement

        async def forget_unassigned(_app: Any, assigned: set[Any], **_kwargs: Any) -> None:
            self.forget(assigned)

        app.on_partitions_assigned.connect(forget_unassigned)  # type: ignore[arg-type]

    def forget(self, assigned: set[Any]) -> None:
        """Drop the in-memory store's contacts of partitions this worker no longer owns.

        Faust's memory store keeps values the agent wrote for partitions that have moved to
        another worker; should such a partition come back, a stale value could shadow what the
        other worker wrote meanwhile. RocksDB keeps one database per partition instead.
        """
        if self.settings.store != "memory":
            return
        source = self.streams.names.envelopes
        owned = {tp.partition for tp in assigned if tp.topic == source}
        data = self.streams.contacts.data.data
        n = self.settings.partitions
        stale = [k for k in data if state_partition(k, n) not in owned]
        for key in stale:
            data.pop(key, None)
        if stale:
            log.info("forgot %d contact(s) of partitions now owned elsewhere", len(stale))

    def _oversize_letter(self, record: Any) -> tuple[str, bytes | None, bytes, list[Any]]:
        """The ingest's dead letter of a record too large to travel in an envelope."""
        value = record.value or b""
        letter = dead_letter(
            record.topic,
            record.partition,
            record.offset,
            record.key,
            value,
            [(k, v) for k, v in record.headers or ()],
            f"oversize: {len(value)} bytes > {self.settings.max_record_bytes}",
            "oversize",
            datetime.now(UTC),
        )
        m.DEAD_LETTERS.labels("oversize").inc()
        return self.streams.names.full(letter.topic), letter.key, letter.value, letter.headers

    # ------------------------------------------------------------ batches
    async def handle(self, events: list[Any]) -> None:
        started = time.perf_counter()
        # A batch can outlive the assignment it was fetched under (a rebalance while it was
        # buffered). Records of partitions this worker no longer owns are left to the new
        # owner: their offsets cannot be committed here, so it will read them again.
        assigned = self.app.consumer.assignment()
        batch: list[Inbound] = []
        skipped = 0
        for event in events:
            message = event.message
            if message.tp not in assigned:
                skipped += 1
                continue
            self.last_offsets[(message.topic, message.partition)] = message.offset
            try:
                entries = envelope.decode(message.value or b"")
            except envelope.EnvelopeError as exc:
                # Not written by an ingest of this version: nothing in it can be counted, and
                # holding the partition would stop it for good. Said loudly, then passed.
                m.BAD_ENVELOPES.inc()
                log.error("%s[%d]@%d: %s", message.topic, message.partition, message.offset, exc)
                continue
            home = message.partition
            batch.extend(Inbound.of(entry, home, event) for entry in entries)
        if skipped:
            m.REVOKED_SKIPPED.inc(skipped)
            log.info("left %d record(s) of revoked partitions to their new owner", skipped)
        out = self.processor.process(batch)
        # Returns once Kafka has every record this batch produced, outputs before states; only
        # then is the batch acked (see agents.landing for why this order).
        tps = {event.message.tp for event in events}

        def still_owner() -> bool:
            return not self.app.should_stop and tps <= self.app.consumer.assignment()

        self._idle.clear()
        try:
            landed, waited = await land(
                out.publish,
                out.redis,
                self.outputs,
                self.store,
                self.snapshots,
                still_owner,
                self.crash,
            )
        finally:
            self._idle.set()
        m.CONFIRM_SECONDS.observe(waited)
        if not landed:
            m.BATCHES_ABANDONED.inc()
            log.info("batch of %d record(s) abandoned: its partitions moved", len(batch))
            return
        self.crash("landing-before-ack")
        # Only now may their acks count toward a commit (envelopes that held nothing usable too).
        self.guard.mark_handled(event.message for event in events if event.message.tp in assigned)
        for key, due in out.due.items():
            self.due.set(key, due)
        self._count(out, len(batch), time.perf_counter() - started)

    @staticmethod
    def _count(out: BatchOutput, size: int, seconds: float) -> None:
        for topic, n in out.records_by_topic.items():
            m.RECORDS_IN.labels(topic).inc(n)
        for code, n in out.dead_by_code.items():
            m.DEAD_LETTERS.labels(code).inc(n)
        if out.dead_by_code:
            log.info(
                "dead letters: %s",
                ", ".join(f"{n} {code}" for code, n in out.dead_by_code.most_common()),
            )
        for outcome, n in out.outcomes.items():
            m.OUTCOMES.labels(outcome).inc(n)
        for cause, n in out.tier_changes.items():
            m.TIER_CHANGES.labels(cause).inc(n)
        if out.forwarded:
            m.FORWARDED.inc(out.forwarded)
        m.BATCH_SIZE.observe(size)
        m.BATCH_SECONDS.observe(seconds)

    # ------------------------------------------------------------ expiry
    async def sweep(self) -> None:
        """Send an expiry tick to every contact of this worker whose oldest message is due."""
        keys = self.due.pop_due(int(time.time()))
        await confirmed(self.outputs.send(self.processor.ticks(keys)))
        m.EXPIRY_TICKS.inc(len(keys))
        m.DUE_CONTACTS.set(len(self.due))
        if keys:
            log.info("expiry sweep: %d contact(s) due for re-evaluation", len(keys))

    # ------------------------------------------------------------ maintenance
    def assigned_partitions(self) -> frozenset[int]:
        source = self.streams.names.envelopes
        return frozenset(
            tp.partition for tp in self.app.consumer.assignment() if tp.topic == source
        )

    def recovered(self) -> bool:
        recovery = self.app.tables.recovery  # type: ignore[attr-defined]
        return bool(recovery.completed.is_set()) and not recovery.in_recovery

    def health(self) -> tuple[bool, str]:
        if not self.topics_ready:
            return False, "creating topics"
        if self.app.rebalancing:
            return False, "rebalancing"
        if not self.assigned_partitions():
            return False, "no partitions assigned"
        if not self.recovered():
            return False, "recovering tables"
        return True, f"partitions {sorted(self.assigned_partitions())}"

    async def maintain(self) -> None:
        """Rebuild the due index after an assignment; keep Redis equal to the tables.

        Never raises for Redis: an outage is recorded and ridden out (`agents.redis_outage`).
        """
        if self.app.rebalancing or not self.recovered():
            return
        assigned = self.assigned_partitions()
        self._lag(assigned)
        await self.guard.resolve_stalls(busy=not self._idle.is_set())
        self._guard_metrics()
        self._ingest_metrics()
        if assigned != self.indexed:
            await self._reindex(assigned)
        if not self.redis.up:
            await self._retry_redis(assigned)
            return
        try:
            if not self.legacy_purged:
                await self._purge_legacy()
            missing = await self.sink.missing_sentinels(sorted(assigned))
            if missing:
                await self.rebuild(missing)
        except REDIS_ERRORS as exc:
            self.redis.failed(exc, "maintaining snapshots")

    async def _retry_redis(self, assigned: frozenset[int]) -> None:
        """During an outage: probe (with backoff); once Redis answers, rebuild what it missed."""
        if not self.redis.probe_due():
            return
        try:
            await self.sink.ping()
        except REDIS_ERRORS as exc:
            self.redis.failed(exc, "probing")
            return
        # Live batches write again from here on; the rebuild below cannot undo them (Redis
        # keeps the higher version of each contact).
        self.redis.recovered()
        started = time.perf_counter()
        try:
            if not self.legacy_purged:
                await self._purge_legacy()
            await self.rebuild(sorted(assigned))
            deletes = self.snapshots.take_held_deletes()
            try:
                await self.sink.apply(deletes)
            except REDIS_ERRORS:
                for op in deletes:  # kept for the next recovery
                    self.snapshots.held_deletes.setdefault((op.org_id, op.contact_id), op)
                raise
        except REDIS_ERRORS as exc:
            self.redis.failed(exc, "rebuilding after an outage")
            return
        m.REDIS_RECOVERY_SECONDS.observe(time.perf_counter() - started)
        log.info(
            "Redis rebuilt after the outage: partitions %s, %d deletion(s) replayed",
            sorted(assigned),
            len(deletes),
        )

    async def _purge_legacy(self) -> None:
        purged = await self.sink.purge_legacy()
        self.legacy_purged = True
        if purged:
            m.LEGACY_KEYS_PURGED.inc(purged)
            log.info("deleted %d Redis key(s) of the layout before em:v2", purged)

    def _ingest_metrics(self) -> None:
        stats = self.ingest.stats
        now = (stats.records, stats.envelopes, stats.commit_failures)
        before, self._ingest_seen = self._ingest_seen, now
        m.INGEST_RECORDS.inc(now[0] - before[0])
        m.INGEST_ENVELOPES.inc(now[1] - before[1])
        m.INGEST_COMMIT_FAILURES.inc(now[2] - before[2])
        for tp, lag in self.ingest.lag().items():
            m.INGEST_LAG.labels(tp.topic, tp.partition).set(lag)

    def _guard_metrics(self) -> None:
        stats = self.guard.guard_stats
        now = (stats.refused, stats.rewound, stats.holes)
        before, self._guard_seen = self._guard_seen, now
        m.ACKS_REFUSED.inc(now[0] - before[0])
        m.REWINDS.inc(now[1] - before[1])
        m.OFFSET_HOLES.inc(now[2] - before[2])

    def _lag(self, assigned: frozenset[int]) -> None:
        consumer = self.app.consumer
        consumed = set(self.streams.names.consumed)
        for tp in consumer.assignment():
            if tp.partition not in assigned or tp.topic not in consumed:
                continue
            try:
                high = consumer.highwater(tp)
            except Exception:
                continue
            if high is None:
                continue
            read = self.last_offsets.get((tp.topic, tp.partition), -1)
            m.CONSUMER_LAG.labels(tp.topic, tp.partition).set(max(0, high - read - 1))

    def _keys_of(self, partitions: frozenset[int]) -> list[bytes]:
        n = self.settings.partitions
        keys = list(self.streams.contacts.keys())
        return [k for k in keys if state_partition(k, n) in partitions]

    async def _reindex(self, assigned: frozenset[int]) -> None:
        """After an assignment: forget revoked partitions, then index and re-snapshot new ones.

        Re-snapshotting what was just assigned makes Redis equal to the recovered table even if
        the previous owner's last Redis write was lost (it stopped mid-batch, or crashed).
        During a Redis outage only the index is built: the recovery rebuilds every partition.
        """
        n = self.settings.partitions
        self.due.discard_where(lambda k: state_partition(k, n) not in assigned)
        added = sorted(assigned - self.indexed)
        written = 0
        if self.redis.up:
            try:
                written = await self.rebuild(added, index=True)  # one pass: index and snapshot
            except REDIS_ERRORS as exc:
                self.redis.failed(exc, "re-snapshotting assigned partitions")
                self._index(added)  # the pass was cut short; setting an entry twice is harmless
        else:
            self._index(added)
        self.indexed = assigned
        m.DUE_CONTACTS.set(len(self.due))
        log.info(
            "assigned partitions %s: %d contact(s) indexed, %d re-snapshotted",
            sorted(assigned),
            len(self.due),
            written,
        )

    def _index(self, partitions: list[int]) -> None:
        """Enter the next expiry of every contact of these partitions in the due index."""
        if not partitions:
            return
        table = self.streams.contacts
        for key in self._keys_of(frozenset(partitions)):
            raw = table.get(key)
            if raw is not None:
                self.due.set(key, next_expiry(unpack(raw, self.cfg).state, self.cfg))

    async def rebuild(self, partitions: list[int], *, index: bool = False) -> int:
        """Rewrite every snapshot of these partitions from the table (Redis lost them), and
        with `index` enter each contact in the due index in the same pass.

        Raises on a Redis error (the caller records the outage); the sentinels are set last,
        so a rebuild cut short is done again.
        """
        if not partitions:
            return 0
        started = time.perf_counter()
        keys = self._keys_of(frozenset(partitions))
        table = self.streams.contacts
        now = datetime.now(UTC)
        ops: list[RedisOp] = []
        written = 0
        for key in keys:
            raw = table.get(key)
            if raw is None:
                continue
            if index:
                self.due.set(key, next_expiry(unpack(raw, self.cfg).state, self.cfg))
            ops.append(self.processor.snapshot_of(key, raw, now))
            if len(ops) >= REBUILD_CHUNK:
                await self.sink.apply(ops)
                written += len(ops)
                ops = []
        await self.sink.apply(ops)
        written += len(ops)
        await self.sink.set_sentinels(partitions)
        m.SNAPSHOT_REBUILDS.inc(written)
        log.info(
            "rebuilt %d snapshot(s) in Redis for partitions %s in %.2f s",
            written,
            partitions,
            time.perf_counter() - started,
        )
        return written
