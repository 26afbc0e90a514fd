"""The Faust side of the worker: one agent, three timers and two web pages around the processor.

Everything here is plumbing. The logic is `agents.processor`, the counting rules are `counting`,
the order of a checkpoint's writes is `agents.checkpoint`; this module moves envelopes from
Faust to the processor, decides when a checkpoint lands, marks its envelopes handled, and keeps
the expiry index and the Redis sentinels up to date.

When a checkpoint lands: as soon as the agent has caught up with its envelopes (so a light
stream gets its snapshots within milliseconds), or once `EM_CHECKPOINT_MAX_EVENTS` entries are
pending or the oldest has waited `EM_CHECKPOINT_MAX_SECONDS`, longer (up to 4x) while the latest
entries fall on contacts already dirty (`agents.checkpoint_pace`; so a backlog lands in large
checkpoints, each dirty contact written once for many of its events), or when the cache holds
`EM_STATE_CACHE_CONTACTS` dirty contacts. Before Faust revokes partitions or stops, what is
pending lands too (`streams.faust_seams.WorkerApp`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, cast

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError
from mode import Service
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from agents import metrics as m
from agents.checkpoint import Checkpoint, observe_step, output_records
from agents.checkpoint_pace import Coalescing, keeping_up_checkpoint_due
from agents.due_index import DueIndex
from agents.processor import (
    CheckpointBatch,
    CheckpointBuild,
    EngagementProcessor,
    RedisJob,
    render_jobs,
)
from agents.redis_outage import REDIS_ERRORS, OutageAwareSnapshots, RedisHealth
from agents.redis_sink import RedisSink
from agents.snapshot_process import SnapshotProcesses
from agents.stored import peek, unpack
from engagement_monitor.crash import CrashPoint
from engagement_monitor.keyspace import split_state_key
from engagement_monitor.settings import MIB, Settings
from streams import envelope
from streams.app import Streams
from streams.checkpoint_store import CheckpointStore, MemoryCheckpointStore
from streams.delivery_guard import STALL_CHECK_SECONDS
from streams.envelope_purge import EnvelopePurger
from streams.faust_seams import GuardedConsumer
from streams.ingest import Ingest
from streams.ingest_process import IngestProcesses, IngestReport, build_ingest, report_of
from streams.partitioning import state_partition
from streams.record_writer import RecordWriter

log = logging.getLogger("engagement_monitor.worker")

REBUILD_CHUNK = 500
COMMIT_SECONDS = 0.25
# Contacts per part of a checkpoint (`_land`): a part lands while the next is built, so a large
# checkpoint's landing (mostly waiting for the broker and Redis) overlaps its building (CPU).
LAND_PART_CONTACTS = 2_000
BUILD_STEP_CONTACTS = 100  # ~10 ms of building between turns of the event loop
APPLY_YIELD_ENTRIES = 500  # ~7 ms of applying between turns of the event loop


def _raise_first(outcomes: list[Any]) -> None:
    """Raise the first exception `asyncio.gather(..., return_exceptions=True)` returned."""
    failed = next((o for o in outcomes if isinstance(o, BaseException)), None)
    if failed is not None:
        raise failed


class WriterService(Service):
    """Starts and stops the worker's producer and its snapshot process with the app."""

    def __init__(
        self, writer: RecordWriter, snapshots: SnapshotProcesses | None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.writer = writer
        self.snapshots = snapshots

    async def on_start(self) -> None:
        await self.writer.start()
        if self.snapshots is not None:
            await self.snapshots.start()

    async def on_stop(self) -> None:
        await self.writer.stop()
        if self.snapshots is not None:
            await self.snapshots.stop()


class EngagementWorker:
    """Installs the agent, timers and pages on a `Streams` app and holds their shared state."""

    def __init__(self, streams: Streams, settings: Settings) -> None:
        self.streams = streams
        self.settings = settings
        self.app = streams.app
        self.cfg = settings.counting_config()
        self.names = streams.names
        self.writer = RecordWriter(settings.kafka_bootstrap)
        self.processor = EngagementProcessor(
            self.cfg,
            settings.partitions,
            streams.names,
            self._load,
            cache_capacity=settings.state_cache_contacts,
            cache_budget_bytes=settings.state_cache_mb * MIB,
        )
        self.sink = RedisSink(
            str(settings.redis_url),
            settings.app_id,
            settings.redis_timeout_seconds,
            cluster=settings.redis_cluster,
        )
        self.redis = RedisHealth()
        # A checkpoint's Redis side (snapshots rendered from the table values, and written):
        # in a process of its own (a core of its own), or here with EM_SNAPSHOT_PROCESSES=0.
        self.snapshot_process = (
            SnapshotProcesses(settings.snapshot_processes) if settings.snapshot_processes else None
        )
        child = self.snapshot_process
        self.snapshots = (
            OutageAwareSnapshots(child.write, self.redis, prepare=child.prepare, drop=child.drop)
            if child is not None
            else OutageAwareSnapshots(self._render_and_write, self.redis)
        )
        self.guard = cast(GuardedConsumer, self.app.consumer)  # checked by create_app
        self.crash = CrashPoint(settings.crash_at)
        self.checkpoint = Checkpoint(
            self.writer,
            streams.names,
            streams.contacts.changelog_topic.get_topic_name(),
            lambda: self.store,
            self.snapshots,
            self.crash,
        )
        # The ingest stage: in processes of its own (a core for reading and framing), or in
        # this event loop with EM_INGEST_PROCESSES=0.
        self.ingest: Ingest | None = None
        self.ingest_processes: IngestProcesses | None = None
        if settings.ingest_processes:
            self.ingest_processes = IngestProcesses(settings.ingest_processes)
        else:
            self.ingest = build_ingest(settings, self.crash)
        # Started and stopped with the app: `App.service` takes an instance as well as a class.
        self.app.service(cast(Any, WriterService(self.writer, self.snapshot_process)))
        if self.snapshot_process is not None:
            # ... but the snapshot processes start with the app itself (`WriterService` finds
            # them running): Faust starts services once the tables are recovered, which is
            # when the ingest starts too, and two children importing then took most of a core
            # from the ingest in a backlog's first half-second (BENCHMARKS.md, session 19).
            self.app.early_starts.append(self.snapshot_process.start)
        # The ingest starts once the agent has its partitions and its tables recovered
        # (`_start_ingest`): framing envelopes nobody can read yet only lengthens their queue,
        # and the two stages then start together.
        self.ingest_started = False
        self.app.landing = self  # lands what is pending before a revocation or a stop
        # Held while envelopes are applied or a checkpoint lands: the agent, the checkpoint
        # timer and the app's rebalance/stop hooks take turns.
        self.lock = asyncio.Lock()
        self.pending: list[Any] = []  # envelope messages applied since the last checkpoint
        self.read_upto: dict[Any, int] = {}  # envelope partition -> last offset applied
        self.purger = EnvelopePurger(settings.kafka_bootstrap)
        self._purged_at = time.monotonic()
        self.stopping = False
        self.landing: asyncio.Future[bool] | None = None  # the checkpoint in flight, to its acks
        self.states: asyncio.Future[bool] | None = None  # its last part's states (`_land_part`)
        self._committed_at = 0.0
        # Whether the pending entries still fall on contacts already dirty (`_checkpoint_due`).
        self.coalescing = Coalescing()
        self._guard_seen = (0, 0, 0, 0)
        self._ingest_seen = IngestReport()
        self._ingest_restarts_seen = 0
        self._cache_loads_seen = 0
        self.due = DueIndex()
        self.indexed: frozenset[int] = frozenset()  # partitions whose due index is built
        self.topics_ready = False
        self.legacy_purged = False  # Redis keys of the pre-v2 layout deleted (once a process)
        self._install()

    @property
    def store(self) -> CheckpointStore:
        return cast(CheckpointStore, self.streams.contacts.data)

    def _load(self, partition: int, key: bytes) -> bytes | None:
        return self.store.get_in_partition(partition, key)

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
                    if self.app.should_stop or self.stopping:
                        # Shutting down: what was pending has landed (`before_stop`), and the
                        # stores may be closed. These records are not handled, so they are
                        # read again by whoever owns the partitions next.
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

        @app.timer(STALL_CHECK_SECONDS, name="delivery_guard", on_leader=False)  # type: ignore[untyped-decorator]
        async def delivery_guard() -> None:
            await self.resolve_stalls()

        interval = min(0.05, settings.checkpoint_linger_seconds)

        @app.timer(interval, name="checkpoint", on_leader=False)  # type: ignore[untyped-decorator]
        async def checkpoint_timer() -> None:
            # The agent lands checkpoints as envelopes arrive; this lands one that waits for
            # an envelope that does not come (the stream went quiet before it caught up).
            if self._checkpoint_overdue():
                async with self.lock:
                    if self._checkpoint_overdue():
                        await self._land()

        @app.timer(0.2, name="start_ingest", on_leader=False)  # type: ignore[untyped-decorator]
        async def start_ingest() -> None:
            if not self.ingest_started and self.ready()[0]:
                self.ingest_started = True
                service: Any = self.ingest or self.ingest_processes
                await self.app.add_runtime_dependency(service)
                log.info("ingest started")

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

    async def _render_and_write(self, jobs: Sequence[RedisJob], _prepared: Any = None) -> None:
        """A checkpoint's Redis jobs, rendered and written in the worker itself."""
        await self.sink.apply(render_jobs(jobs, self.cfg))

    def forget(self, assigned: set[Any]) -> None:
        """Drop the in-memory store's contacts of partitions this worker no longer owns.

        Faust's memory store keeps values written for partitions that have moved to another
        worker; should such a partition come back, a stale value could shadow what the other
        worker wrote meanwhile. RocksDB keeps one database per partition instead.
        """
        store = self.store
        if not isinstance(store, MemoryCheckpointStore):
            return
        source = self.streams.names.envelopes
        owned = {tp.partition for tp in assigned if tp.topic == source}
        gone = frozenset(range(self.settings.partitions)) - owned
        forgotten = store.forget_partitions(gone)
        if forgotten:
            log.info("forgot %d contact(s) of partitions now owned elsewhere", forgotten)

    # ------------------------------------------------------------ envelopes
    async def handle(self, events: list[Any]) -> None:
        """Apply a batch of envelopes to the cached contacts; land a checkpoint when it is due."""
        if self.app.rebalancing or self.stopping:
            # Faust seeks every partition back to its committed offset once the rebalance is
            # over: whatever is applied now would be read again anyway, and a checkpoint could
            # not tell which partitions it still owns. The stream acks these; the guard does
            # not count those acks (nothing marked them handled).
            m.REVOKED_SKIPPED.inc(len(events))
            return
        async with self.lock:
            await self._apply(events)
            if self._checkpoint_due():
                await self._land()

    async def _apply(self, events: list[Any]) -> None:
        """Apply envelopes to the cached contacts, letting the event loop run every
        `APPLY_YIELD_ENTRIES` entries: a batch can hold a hundred thousand entries (seconds of
        work), and the checkpoint landing meanwhile waits on the loop for every step."""
        started = time.perf_counter()
        # A batch can outlive the assignment it was fetched under. Records of partitions this
        # worker no longer owns are left to the new owner: their offsets cannot be committed
        # here, so it will read them again.
        assigned = self.app.consumer.assignment()
        processor, read_upto = self.processor, self.read_upto
        applied = skipped = since_yield = 0
        wall = time.time()
        waits = m.ENVELOPE_WAIT_SECONDS
        for event in events:
            message = event.message
            tp = message.tp
            if tp not in assigned:
                skipped += 1
                continue
            read_upto[tp] = message.offset
            waits.observe(max(0.0, wall - message.timestamp))
            self.pending.append(message)  # not a local: a failed landing may reset it below
            try:
                count = processor.apply_envelope(message.value or b"", message.partition)
            except envelope.EnvelopeError as exc:
                # Not written by an ingest of this version (or damaged): what it holds from the
                # damage on cannot be counted, and holding the partition would stop it for
                # good. Said loudly, then passed (its ack counts with the checkpoint).
                m.BAD_ENVELOPES.inc()
                log.error("%s[%d]@%d: %s", message.topic, message.partition, message.offset, exc)
                continue
            applied += count
            since_yield += count
            if since_yield >= APPLY_YIELD_ENTRIES:
                since_yield = 0
                await asyncio.sleep(0)  # the landing in flight, fetchers, heartbeats
        if skipped:
            m.REVOKED_SKIPPED.inc(skipped)
            log.info("left %d record(s) of revoked partitions to their new owner", skipped)
        m.BATCH_SIZE.observe(applied)
        m.BATCH_SECONDS.observe(time.perf_counter() - started)

    # ------------------------------------------------------------ checkpoints
    def _pending_age(self) -> float:
        since = self.processor.pending_since
        return 0.0 if since is None else time.monotonic() - since

    def _checkpoint_due(self) -> bool:
        """Land now? Soon when the agent keeps up (latency), late under a backlog (throughput).

        * At once when no envelope is known beyond what was applied and the ingest has framed
          nearly every input record;
        * after `EM_CHECKPOINT_LINGER_SECONDS` when what is left to read is about what the agent
          applies in that time (a steady stream it keeps up with: the newest envelopes are
          always just behind) (both `agents.checkpoint_pace.keeping_up_checkpoint_due`);
        * otherwise (a backlog) once `EM_CHECKPOINT_MAX_EVENTS` entries are pending or the
          oldest has waited `EM_CHECKPOINT_MAX_SECONDS`, longer (up to 4x) while the latest
          entries fall on contacts already dirty (`agents.checkpoint_pace`): a large
          checkpoint writes each contact once for many of its events, which is how a backlog
          drains fast.
        """
        if not self.pending:
            return False
        settings = self.settings
        age = self._pending_age()
        entries, dirty = self.processor.pending.entries, len(self.processor.cache.dirty)
        self.coalescing.observe(entries, dirty)
        if self.coalescing.new_share is not None:
            m.CHECKPOINT_NEW_CONTACT_SHARE.set(self.coalescing.new_share)
        if (
            entries >= settings.checkpoint_max_events
            or dirty >= max(1, settings.state_cache_contacts)
            or self.processor.cache.over_budget
            or self.coalescing.due(age, settings.checkpoint_max_seconds)
        ):
            return True
        return keeping_up_checkpoint_due(
            self._envelopes_behind(),
            self._unframed(),
            entries,
            len(self.pending),
            age,
            settings.checkpoint_linger_seconds,
        )

    def _unframed(self) -> int:
        """Input records this worker's ingest has not framed yet (its last report), at least a
        full fetch's worth when its last fetch was full."""
        if not self.ingest_started:
            return 0
        report = self.ingest_report()
        unframed = sum(report.lag.values())
        return max(unframed, self.settings.batch_max_records) if report.full else unframed

    def _checkpoint_overdue(self) -> bool:
        """For the timer: a checkpoint due while no envelope arrives to trigger it."""
        return not self.app.rebalancing and not self.stopping and self._checkpoint_due()

    def _envelopes_behind(self) -> int:
        """Envelopes known to the consumer beyond those applied, on the partitions being read."""
        consumer = self.app.consumer
        behind = 0
        for tp in {message.tp for message in self.pending}:
            try:
                high = consumer.highwater(tp)
            except Exception:
                continue
            if high is not None:
                behind += max(0, high - self.read_upto.get(tp, -1) - 1)
        return behind

    async def _land(self) -> bool:
        """Build a checkpoint of everything pending and start landing it (the lock is held).

        Building is CPU; landing is mostly waiting for the broker and Redis. So the agent
        builds the checkpoint in parts of `LAND_PART_CONTACTS` contacts, and lands each part
        as soon as it is built, while the next is built (`_land_part`). The agent then goes
        back to applying envelopes while the last parts land. False if a checkpoint before it
        was abandoned (or failed), which abandons this one too: it was built on the changes of
        the first.
        """
        messages, self.pending = self.pending, []
        if not messages:
            return await self._landed()
        states = self.states
        if (
            states is not None
            and states.done()
            and (states.cancelled() or states.exception() is not None or not states.result())
        ):
            # The chain ended in an abandoned (or failed) part, already answered for (its
            # checkpoint's acks said so, and everything was forgotten): start a new one.
            self.states = None
        build = self.processor.start_checkpoint(BUILD_STEP_CONTACTS)
        self.coalescing.reset()
        redis: list[asyncio.Future[None]] = []  # the Redis writes of this checkpoint's parts
        acked = self.landing  # the checkpoint before, up to its acks
        started = time.perf_counter()
        while True:
            more = build.step()
            if build.void:  # a checkpoint before it was abandoned meanwhile
                break
            if not more or build.unparted >= LAND_PART_CONTACTS:
                part = build.take_part()
                self.checkpoint.prepare_redis(part)  # rendering starts now, beside the landing
                self.states = asyncio.ensure_future(
                    self._land_part(self.states, build, part, messages, redis)
                )
                if not more:
                    self.landing = asyncio.ensure_future(
                        self._acknowledge(acked, self.states, redis, build, messages, started)
                    )
                    return True
            await asyncio.sleep(0)  # let the fetchers, heartbeats and landings run meanwhile
        # Void: everything since the last acks is forgotten. The parts of this one already
        # started are waited for (they abandon too; the Redis writes of any that landed are
        # harmless), so no landing of it is left running.
        try:
            await self._landed()
            started_parts = [self.states] if self.states is not None else []
            _raise_first(await asyncio.gather(*started_parts, *redis, return_exceptions=True))
        finally:
            self.states = None
            self._abandon()
        return False

    async def _landed(self) -> bool:
        """Wait for the checkpoint in flight, if any, up to its acks; False if it was
        abandoned."""
        landing, self.landing = self.landing, None
        if landing is None:
            return True
        return await landing

    async def _land_part(
        self,
        previous: asyncio.Future[bool] | None,
        build: CheckpointBuild,
        part: CheckpointBatch,
        messages: list[Any],
        redis: list[asyncio.Future[None]],
    ) -> bool:
        """Land one part's outputs and states (`Checkpoint.land_state`) once the part before
        it (of this checkpoint or the one before) has landed its own, then start its Redis
        write (`Checkpoint.land_redis`) and return: Redis keeps the higher version of a
        contact, so Redis writes need no order among themselves, and the next part's states
        need not wait for them. False if a part before was abandoned, or this one is (its
        Redis side, being rendered since it was built, is then dropped)."""
        writing = False
        try:
            writing = await self._land_part_states(previous, build, part, messages)
            if writing:
                redis.append(asyncio.ensure_future(self.checkpoint.land_redis(part)))
            return writing
        finally:
            if not writing:
                self.checkpoint.drop_redis(part)

    async def _land_part_states(
        self,
        previous: asyncio.Future[bool] | None,
        build: CheckpointBuild,
        part: CheckpointBatch,
        messages: list[Any],
    ) -> bool:
        """`_land_part` up to its Redis write: True once its states have landed."""
        if previous is not None:
            waited = time.perf_counter()
            try:
                landed = await previous
                observe_step("wait", waited)
            except BaseException:
                self._abandon()  # built on the changes of the one that failed
                raise
            if not landed:  # a part before was abandoned: this one was built on its changes
                self._abandon()
                return False
        if build.void:
            self._abandon()
            return False
        tps = {message.tp for message in messages}
        consumer = self.app.consumer

        def still_owner() -> bool:
            # The app lets a landing checkpoint finish before it revokes or stops (`before_*`),
            # so the partitions are ours for as long as the consumer says so.
            return tps <= consumer.assignment()

        try:
            landed = await self.checkpoint.land_state(part, still_owner)
        except BaseException:
            # Cancelled or failed half-way: the cache holds changes that may not be written.
            self._abandon()
            raise
        if not landed:
            self._abandon()
            m.CHECKPOINTS_ABANDONED.inc()
            log.info(
                "checkpoint of %d envelope(s) abandoned: its partitions moved; they will be "
                "read again",
                len(messages),
            )
            return False
        self.processor.landed(part)
        for change in part.changes:
            self.due.set(change.key, change.due)
        return True

    async def _acknowledge(
        self,
        acked: asyncio.Future[bool] | None,
        states: asyncio.Future[bool],
        redis: list[asyncio.Future[None]],
        build: CheckpointBuild,
        messages: list[Any],
        started: float,
    ) -> bool:
        """Step 6, once every part's states and Redis writes have landed and the checkpoint
        before has been acknowledged: the checkpoint's envelopes are marked handled."""
        try:
            landed = await states
        finally:
            # Every Redis write started is awaited, whatever happened since (none is left
            # running behind the acks, or unobserved).
            outcomes = await asyncio.gather(*redis, return_exceptions=True)
        if acked is not None and not await acked:
            return False
        try:
            _raise_first(outcomes)
        except BaseException:
            self._abandon()
            raise
        if not landed:
            return False
        batch = build.batch
        m.CHECKPOINT_SECONDS.observe(time.perf_counter() - started)
        self.crash("checkpoint-before-ack")
        # 6. Only now may their acks count toward a commit (envelopes that held nothing too).
        self.guard.mark_handled(messages)
        self._count(batch)
        log.debug(
            "checkpoint landed: %d entries, %d contacts, %.1f ms",
            batch.entries,
            len(batch.changes),
            1000 * (time.perf_counter() - started),
        )
        now = time.monotonic()
        if now - self._committed_at >= COMMIT_SECONDS and not self.stopping:
            # Commit what just landed now rather than at Faust's next commit tick: under a
            # backlog that is a second less to read again after a crash.
            self._committed_at = now
            await self.app.consumer.commit()
        return True

    def _abandon(self) -> None:
        """Forget every change not landed: the cached contacts, and the envelopes applied
        since (they were applied on top). None of them is marked handled, so all are read
        again from the last commit."""
        self.processor.abandon()
        self.pending = []

    async def before_revoke(self, revoked: set[Any]) -> None:
        """Before Faust revokes partitions: land what is pending (all of it is still ours),
        then forget the cached contacts of the revoked partitions."""
        async with self.lock:
            if not await self._land() or not await self._landed():
                return
            source = self.streams.names.envelopes
            gone = frozenset(tp.partition for tp in revoked if tp.topic == source)
            if gone:
                self.processor.abandon(gone)
                for tp in [tp for tp in self.read_upto if tp.partition in gone]:
                    del self.read_upto[tp]

    async def before_stop(self) -> None:
        """Before the consumer stops: a last checkpoint, then no more batches."""
        async with self.lock:
            self.stopping = True
            if await self._land():
                await self._landed()
        await self.purger.close()

    def _count(self, batch: CheckpointBatch) -> None:
        for topic, n in batch.records_by_topic.items():
            m.RECORDS_IN.labels(topic).inc(n)
        for code, n in batch.dead_by_code.items():
            m.DEAD_LETTERS.labels(code).inc(n)
        if batch.dead_by_code:
            log.info(
                "dead letters: %s",
                ", ".join(f"{n} {code}" for code, n in batch.dead_by_code.most_common()),
            )
        for outcome, n in batch.outcomes.items():
            m.OUTCOMES.labels(outcome).inc(n)
        for cause, n in batch.tier_changes.items():
            m.TIER_CHANGES.labels(cause).inc(n)
        if batch.forwarded:
            m.FORWARDED.inc(batch.forwarded)
        m.CHECKPOINT_ENTRIES.observe(batch.entries)
        m.CHECKPOINT_CONTACTS.observe(len(batch.changes))
        cache = self.processor.cache
        m.STATE_CACHE_CONTACTS.set(len(cache))
        m.STATE_CACHE_BYTES.set(cache.bytes)
        m.STATE_CACHE_LOADS.inc(cache.loads - self._cache_loads_seen)
        self._cache_loads_seen = cache.loads

    # ------------------------------------------------------------ expiry
    async def sweep(self) -> None:
        """Send an expiry tick to every contact of this worker whose oldest message is due."""
        now = int(time.time())
        keys = self.due.pop_due(now)
        ticks = self.processor.ticks(keys)
        if ticks:
            try:
                await self.writer.write(output_records(ticks, self.names))
            except KafkaError as exc:
                await self.writer.reset()
                for key in keys:  # due still: the next sweep sends them
                    self.due.set(key, now)
                log.warning("expiry sweep: Kafka did not take the ticks (%s); next sweep", exc)
                return
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

    def ready(self) -> tuple[bool, str]:
        """Topics created, partitions assigned, tables recovered: the agent can work."""
        if not self.topics_ready:
            return False, "creating topics"
        if self.app.rebalancing:
            return False, "rebalancing"
        if not self.assigned_partitions():
            return False, "no partitions assigned"
        if not self.recovered():
            return False, "recovering tables"
        return True, f"partitions {sorted(self.assigned_partitions())}"

    def health(self) -> tuple[bool, str]:
        """Ready, and the ingest has started reading the input topics."""
        ok, reason = self.ready()
        if ok and not self.ingest_running():
            return False, "starting the ingest"
        return ok, reason

    def ingest_running(self) -> bool:
        if not self.ingest_started:
            return False
        if self.ingest_processes is not None:
            return self.ingest_processes.reported
        return self.ingest is not None and self.ingest.consumer is not None

    async def resolve_stalls(self) -> None:
        """Read again a record Faust skipped (`streams.delivery_guard`). Often: after a
        rebalance (a fail-over) a skipped record holds a partition back until it is found."""
        if self.app.rebalancing or not self.recovered():
            return
        # Envelopes applied and not yet landed hold their acks back: not a stall.
        try:
            await self.guard.resolve_stalls(
                busy=self.lock.locked()
                or bool(self.pending)
                or (self.landing is not None and not self.landing.done())
            )
        except KafkaError as exc:  # the broker is away: asked again at the next tick
            log.warning("could not look for stalled partitions (%s)", exc)

    async def maintain(self) -> None:
        """Rebuild the due index after an assignment; keep Redis equal to the tables.

        Never raises for Redis: an outage is recorded and ridden out (`agents.redis_outage`).
        """
        if self.app.rebalancing or not self.recovered():
            return
        assigned = self.assigned_partitions()
        self._lag(assigned)
        self._guard_metrics()
        self._ingest_metrics()
        for kind, held in self.store.memory_bytes().items():
            m.STORE_MEMORY_BYTES.labels(kind).set(held)
        await self._purge_envelopes()
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

    async def _purge_envelopes(self) -> None:
        every = self.settings.envelope_purge_seconds
        if not every or time.monotonic() - self._purged_at < every:
            return
        self._purged_at = time.monotonic()
        before = self.purger.deleted
        await self.purger.purge(
            {
                TopicPartition(tp.topic, tp.partition): o
                for tp, o in self.guard.committed_offsets().items()
            }
        )
        m.ENVELOPES_PURGED.inc(self.purger.deleted - before)

    def ingest_report(self) -> IngestReport:
        if self.ingest_processes is not None:
            return self.ingest_processes.report()
        assert self.ingest is not None
        return report_of(self.ingest)

    def _ingest_metrics(self) -> None:
        now = self.ingest_report()
        before, self._ingest_seen = self._ingest_seen, now
        m.INGEST_RECORDS.inc(max(0, now.records - before.records))
        m.INGEST_ENVELOPES.inc(max(0, now.envelopes - before.envelopes))
        m.INGEST_COMMIT_FAILURES.inc(max(0, now.commit_failures - before.commit_failures))
        m.DEAD_LETTERS.labels("oversize").inc(max(0, now.oversize - before.oversize))
        for tp, lag in now.lag.items():
            m.INGEST_LAG.labels(tp.topic, tp.partition).set(lag)
        if self.ingest_processes is not None:
            restarts = self.ingest_processes.restarts
            m.INGEST_RESTARTS.inc(restarts - self._ingest_restarts_seen)
            self._ingest_restarts_seen = restarts

    def _guard_metrics(self) -> None:
        stats = self.guard.guard_stats
        now = (stats.refused, stats.rewound, stats.holes, stats.deferred)
        before, self._guard_seen = self._guard_seen, now
        m.ACKS_REFUSED.inc(now[0] - before[0])
        m.REWINDS.inc(now[1] - before[1])
        m.OFFSET_HOLES.inc(now[2] - before[2])
        m.ACKS_DEFERRED.inc(now[3] - before[3])

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
            read = self.read_upto.get(tp, -1)
            m.CONSUMER_LAG.labels(tp.topic, tp.partition).set(max(0, high - read - 1))

    def _stored(self, partitions: frozenset[int]) -> Iterable[tuple[bytes, bytes]]:
        """(key, value) of every contact the table holds for these partitions."""
        return self.store.items_in_partitions(partitions)

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
                # One pass: index, and rewrite what Redis does not hold yet.
                written = await self.rebuild(added, index=True, only_stale=True)
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
        for key, raw in self._stored(frozenset(partitions)):
            self.due.set(key, peek(raw, self.cfg)[1])

    async def rebuild(
        self, partitions: list[int], *, index: bool = False, only_stale: bool = False
    ) -> int:
        """Rewrite the snapshots of these partitions from the table, and with `index` enter
        each contact in the due index in the same pass.

        `only_stale`: rewrite only contacts whose version in Redis differs from the table's
        (after an assignment, most are current: only the previous owner's last writes may have
        been lost), which needs only each value's header; otherwise every one (Redis lost them,
        or `resnapshot` asked for it).

        Raises on a Redis error (the caller records the outage); the sentinels are set last,
        so a rebuild cut short is done again. Not under the lock: a checkpoint racing it
        writes a higher version, which Redis keeps. Yields to the event loop between chunks.
        """
        if not partitions:
            return 0
        started = time.perf_counter()
        now = datetime.now(UTC)
        chunk: list[tuple[bytes, bytes, int]] = []
        written = 0
        for key, raw in self._stored(frozenset(partitions)):
            version, due = peek(raw, self.cfg)
            if index:
                self.due.set(key, due)
            chunk.append((key, raw, version))
            if len(chunk) >= REBUILD_CHUNK:
                written += await self._rewrite(chunk, now, only_stale)
                chunk = []
        written += await self._rewrite(chunk, now, only_stale)
        await self.sink.set_sentinels(partitions)
        m.SNAPSHOT_REBUILDS.inc(written)
        log.info(
            "rebuilt %d snapshot(s) in Redis for partitions %s in %.2f s",
            written,
            partitions,
            time.perf_counter() - started,
        )
        return written

    async def _rewrite(
        self, chunk: list[tuple[bytes, bytes, int]], now: datetime, only_stale: bool
    ) -> int:
        if not chunk:
            return 0
        if only_stale:
            held = await self.sink.versions([split_state_key(key) for key, _, _ in chunk])
            chunk = [item for item, version in zip(chunk, held, strict=True) if version != item[2]]
        await self.sink.apply(
            [self.processor.snapshot_of(key, unpack(raw, self.cfg), now) for key, raw, _ in chunk]
        )
        return len(chunk)
