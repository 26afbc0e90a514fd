"""A checkpoint: how the changes of many envelopes reach Kafka, the table and Redis, in order.

Between checkpoints the worker only applies envelope entries to decoded contacts in memory
(``agents.processor``). A checkpoint writes what they changed, in these steps (as quixstreams'
``Checkpoint.commit`` does, and for the same reasons):

1. **Outputs** (tier changes, dispatch statuses, dead letters, forwarded entries) are produced
   and acknowledged by the broker.
2. **Ownership** is checked: a worker that is stopping, or lost one of the checkpoint's
   partitions meanwhile, writes no state (the next owner may already have recovered it).
3. **Changelog**: one record per dirty contact, on the table's changelog partition that owns it,
   produced in bulk and acknowledged; the offset of each partition's last record is kept.
4. **Table store**: one write per partition holding the values *and* that changelog offset
   (``streams.checkpoint_store``), so the local store never runs ahead of the changelog and
   Faust's recovery replays exactly what follows it.
5. **Redis**: snapshots and segment indexes, a few round trips (skipped during an outage,
   ``agents.redis_outage``), rendered from the table values of step 4 by the snapshot
   process (``agents.snapshot_process``), off the worker's core.
6. **Acks** (by the worker, ``agents.engagement``): the checkpoint's envelopes are marked
   handled, and only then do their offsets count toward a commit.

The worker lands a large checkpoint in parts, each while it builds the next: steps 1-4 of one
part after those of the part before (``land_state``), step 5 of each part on the side once its
step 4 is done (``land_redis``: Redis keeps the higher version of a contact, so these need no
order among themselves), step 6 once all of them are done (``agents.engagement``).

Why this order. A crash after 1 publishes the outputs again on replay (at least once, never
lost: the state that records them as published was not written). A crash after 3 or 4 replays
envelopes onto a state that already holds them, which changes nothing (every transition is
idempotent). Acks come last, so no offset is ever committed whose effect is not in the
changelog, which is what the next owner of a partition recovers from. ``EM_CRASH_AT`` can kill
the worker at each step (``tests/integration/test_crash_points.py``).

A Kafka error in step 1 or 3 is retried with backoff (1 s doubling to 30 s) on a fresh producer,
for as long as the worker owns the partitions: a broker outage pauses checkpoints, it does not
lose or double-count anything. Nothing else of the checkpoint changes between tries.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Protocol

from aiokafka.errors import KafkaError

from agents import metrics as m
from agents.processor import CheckpointBatch, Outbound, RedisJob
from streams.checkpoint_store import CheckpointStore, Write
from streams.records import Record
from streams.topics import TopicNames

log = logging.getLogger("engagement_monitor.checkpoint")

FIRST_RETRY_SECONDS = 1.0
MAX_RETRY_SECONDS = 30.0


class Writer(Protocol):
    async def write(self, records: Iterable[Record]) -> dict[tuple[str, int], int]: ...

    async def reset(self) -> None: ...


class Snapshots(Protocol):
    def prepare(self, jobs: Sequence[RedisJob]) -> Any: ...

    def drop(self, prepared: Any) -> None: ...

    async def apply(self, jobs: Sequence[RedisJob], prepared: Any = None) -> None: ...


class Abandoned(Exception):
    """The worker lost a partition of the checkpoint, or began to stop, before its states."""


STEP_SECONDS = {
    step: m.CHECKPOINT_STEP_SECONDS.labels(step)
    for step in ("wait", "outputs", "changelog", "store", "redis")
}


def observe_step(step: str, started: float) -> float:
    """Record a step's time since `started` (`time.perf_counter`); returns now (the next
    step's start)."""
    now = time.perf_counter()
    STEP_SECONDS[step].observe(now - started)
    return now


def output_records(outputs: Sequence[Outbound], names: TopicNames) -> list[Record]:
    return [Record(names.full(o.topic), o.key, o.value, o.partition, o.headers) for o in outputs]


class Checkpoint:
    """Steps 1-5 above for one `CheckpointBatch` (or one part of a checkpoint's)."""

    def __init__(
        self,
        writer: Writer,
        names: TopicNames,
        changelog_topic: str,
        store: Callable[[], CheckpointStore],
        snapshots: Snapshots,
        crash: Callable[[str], None] = lambda _step: None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.writer = writer
        self.names = names
        self.changelog_topic = changelog_topic
        self.store = store  # the table's store, looked up when used (Faust makes it lazily)
        self.snapshots = snapshots
        self.crash = crash
        self.sleep = sleep

    async def land(self, batch: CheckpointBatch, still_owner: Callable[[], bool]) -> bool:
        """Write the batch; False if it was abandoned (its states must then be forgotten)."""
        if not await self.land_state(batch, still_owner):
            return False
        await self.land_redis(batch)
        return True

    async def land_state(self, batch: CheckpointBatch, still_owner: Callable[[], bool]) -> bool:
        """Steps 1-4; False if the batch was abandoned (its states must then be forgotten).

        The worker lands the parts of a checkpoint's states one after the other, and lets
        each part's Redis write (`land_redis`) run meanwhile: Redis keeps the higher version
        of a contact, so those writes need no order among themselves, only to come after
        their part's states and before the checkpoint's acks."""
        try:
            await self._land(batch, still_owner)
        except Abandoned:
            return False
        return True

    def prepare_redis(self, batch: CheckpointBatch) -> None:
        """Start rendering the batch's Redis side now (it is written in step 5, once steps 1-4
        are done; `drop_redis` if they are not)."""
        batch.redis_ticket = self.snapshots.prepare([c.redis for c in batch.changes])

    def drop_redis(self, batch: CheckpointBatch) -> None:
        self.snapshots.drop(batch.redis_ticket)
        batch.redis_ticket = None

    async def land_redis(self, batch: CheckpointBatch) -> None:
        """Step 5."""
        if batch.changes:
            started = time.perf_counter()
            await self.snapshots.apply([c.redis for c in batch.changes], batch.redis_ticket)
            observe_step("redis", started)
        batch.redis_ticket = None
        self.crash("checkpoint-after-redis")

    async def _land(self, batch: CheckpointBatch, still_owner: Callable[[], bool]) -> None:
        # 1. Outputs, acknowledged.
        started = time.perf_counter()
        if batch.outputs:
            records = output_records(batch.outputs, self.names)
            await self._write(records, still_owner, "outputs")
            started = observe_step("outputs", started)
        self.crash("checkpoint-after-outputs")
        # 2. Still the owner of every partition written below?
        if not still_owner():
            raise Abandoned
        changes = batch.changes
        if changes:
            # 3. Changelog: one record per dirty contact, acknowledged; last offset per partition.
            topic = self.changelog_topic
            offsets = await self._write(
                [Record(topic, c.key, c.value, c.partition) for c in changes],
                still_owner,
                "changelog",
            )
            started = observe_step("changelog", started)
            self.crash("checkpoint-after-changelog")
            # 4. Table store: values and changelog offset in one write per partition.
            by_partition: dict[int, list[Write]] = {}
            for change in changes:
                writes = by_partition.get(change.partition)
                if writes is None:
                    writes = by_partition[change.partition] = []
                writes.append((change.key, change.value))
            store = self.store()
            for partition, writes in by_partition.items():
                store.write_checkpoint(partition, writes, offsets[(topic, partition)])
            observe_step("store", started)
            self.crash("checkpoint-after-store")

    async def _write(
        self, records: list[Record], still_owner: Callable[[], bool], what: str
    ) -> dict[tuple[str, int], int]:
        delay = FIRST_RETRY_SECONDS
        while True:
            try:
                return await self.writer.write(records)
            except KafkaError as exc:
                m.CHECKPOINT_RETRIES.labels(what).inc()
                log.warning(
                    "checkpoint: writing %d %s record(s) failed (%s: %s); retrying in %.0f s",
                    len(records),
                    what,
                    type(exc).__name__,
                    exc,
                    delay,
                )
                await self.writer.reset()
                await self.sleep(delay)
                delay = min(delay * 2, MAX_RETRY_SECONDS)
                if not still_owner():
                    raise Abandoned from exc
