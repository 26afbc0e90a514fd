"""Commit an input offset only once the agent has handled every record before it.

Faust (faust-streaming 0.15) can commit past a record the agent never saw. Tracing the rebalance
tests of issue 4 showed four ways, all around a rebalance or the seek that ends one:

1. a stream that dequeues a record while flow control is paused, or one fetched under an older
   consumer generation, skips it **and acks it** ("otherwise the lag would increase");
2. the consumer's drain loop drops a fetched record whose offset is below the last one it read,
   so after a seek the re-read of such a skipped record is dropped as well;
3. the drain loop treats every offset between the last one read and the next one as a gap and
   counts it as acked; records fetched before a seek but delivered after it make such a "gap"
   out of records nobody delivered;
4. the committable offset skips one missing offset right after the committed one.

The guard closes all four. It is a mixin of the consumer class itself (`GuardedConsumer` in
`streams.faust_seams`, given to Faust through its `faust.transports` entry point), so each rule
is an override of a consumer method, not a patch:

* only records the agent marked as handled are acked; any other record's offset stays
  uncommitted (1). The stream acks a batch when it asks for the next one, usually before the
  batch's checkpoint has landed: that ack is held, and counts once the record is marked;
* every fetched record is delivered, however it compares with what was read before (2, 3):
  the agent is idempotent, so a record read twice changes nothing;
* the committable offset is the end of the run of acked offsets that starts exactly at the
  committed one (4);
* after the seek that ends a rebalance, a partition never committed is sent back to its
  beginning like the others are to their committed offsets (Faust leaves it where the fetcher
  was, past whatever it fetched and dropped meanwhile);
* `resolve_stalls` (run by the worker every half second) looks at a partition whose commit is
  held by a missing offset (acks wait behind it, or, with the agent idle, records past it were
  fetched and none was acked) and asks the broker what is there: no record (a transaction
  marker, say) and the offsets count as done; a record, and the partition is sought back to it
  so it is read again.

It reads Faust's private consumer state (`_acked`, `_committed_offset`, `_read_offset`), so the
faust-streaming version is pinned exactly and `streams.faust_seams.check_faust` verifies at
start-up that every name it relies on is there; the pure decisions are functions below, tested
without a broker (`tests/streams/test_delivery_guard.py`).
"""

from __future__ import annotations

import logging
import time
import weakref
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.transport.drivers.aiokafka import server_list

log = logging.getLogger("engagement_monitor.delivery")

# A missing offset must hold a partition back this long before the broker is asked about it
# (checked every STALL_CHECK_SECONDS by the worker): after a fail-over, the time to notice a
# record Faust skipped adds to the time the lost worker's contacts go unserved.
STALL_GRACE_SECONDS = 1.0
STALL_CHECK_SECONDS = 0.5
IDLE_SECONDS = 3.0  # no batch handled for this long: whatever was fetched has been delivered


def next_commit(acked: list[int], committed: int | None) -> tuple[int | None, int]:
    """(offset to commit or None, how many acked entries it consumes) for one partition.

    `acked` is sorted; `committed` is the next offset to read (Kafka's committed offset; None
    for a partition never committed, read from its beginning: offset 0). Only a run of acked
    offsets that starts at `committed` may be committed. (A topic whose beginning was deleted by
    retention starts later: `DeliveryGuard.resolve_stalls` finds no record below it.)
    """
    committed = committed or 0
    start = 0
    while start < len(acked) and acked[start] < committed:
        start += 1  # already behind the commit
    if start == len(acked) or acked[start] != committed:
        return None, start
    end = start + 1
    while end < len(acked) and acked[end] == acked[end - 1] + 1:
        end += 1
    return acked[end - 1] + 1, end


def stalled_at(
    acked: Sequence[int], committed: int | None, fetched_upto: int, idle: bool
) -> int | None:
    """The missing offset that holds the commit back, if any.

    Either acks wait behind it, or (once the agent has been idle for a while, so nothing is
    still on its way to it) records past it were fetched and none of them was acked.
    """
    committed = committed or 0
    if acked:
        return committed if min(acked) > committed else None
    return committed if idle and fetched_upto > committed else None


class _NeverRead(defaultdict[Any, Any]):
    """Faust's `_read_offset`, answering "nothing read yet" to the drain loop.

    The drain loop drops records below the last offset read and fills gaps from it; both assume
    no record was lost between a fetch and a seek, which a rebalance breaks (see above).
    Writes are kept (Faust's seek bookkeeping), reads by `[]` say None.
    """

    def __init__(self) -> None:
        super().__init__(lambda: None)

    def __getitem__(self, key: Any) -> None:
        return None


@dataclass
class GuardStats:
    refused: int = 0  # acks refused: records not (yet) handled when the stream acked them
    deferred: int = 0  # of those, acks that counted once their checkpoint landed
    rewound: int = 0  # partitions sought back to a record that was never handled
    holes: int = 0  # offsets with no record (transaction markers) counted as done


# The consumer state the guard reads and writes: checked at start-up (streams.faust_seams).
CONSUMER_STATE = (
    "_acked",
    "_acked_index",
    "_committed_offset",
    "_read_offset",
    "_unacked_messages",
    "_waiting_for_ack",
)
CONSUMER_METHODS = ("ack", "_new_offset", "_reset_state", "getmany", "perform_seek", "seek")


class DeliveryGuard:
    """Mixin placed before Faust's consumer class: the agent calls `mark_handled`, the worker
    `resolve_stalls`. Every override calls the consumer's own method through `super()`.
    """

    # Given by the consumer class the guard is mixed into (declared for the type checker).
    app: Any
    _acked: Any
    _acked_index: Any
    _committed_offset: Any
    _read_offset: Any
    _unacked_messages: Any
    _waiting_for_ack: Any
    transport: Any
    assignment: Any
    seek: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._guard_handled: weakref.WeakSet[Any] = weakref.WeakSet()
        self._guard_refused: weakref.WeakSet[Any] = weakref.WeakSet()
        self._guard_stalls: dict[tuple[Any, int], float] = {}
        self._guard_fetched_upto: dict[Any, int] = {}  # per partition: 1 + last offset fetched
        self._guard_last_handled = time.monotonic()
        self._guard_probe: AIOKafkaConsumer | None = None
        self.guard_stats = GuardStats()
        super().__init__(*args, **kwargs)

    # ---------------------------------------------------------------- overrides
    def ack(self, message: Any) -> bool:
        if message in self._guard_handled:
            return bool(super().ack(message))  # type: ignore[misc]
        return self._refuse(message)

    def _new_offset(self, tp: Any) -> int | None:
        acked = self._acked[tp]
        if not acked:
            return None
        acked.sort()
        offset, used = next_commit(acked, self._committed_offset[tp])
        if used:
            self._acked_index[tp].difference_update(acked[:used])
            del acked[:used]
        return offset

    def _reset_state(self) -> None:
        super()._reset_state()  # type: ignore[misc]
        self._read_offset = _NeverRead()

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[Any, Any]]:  # noqa: ASYNC109
        async for tp, message in super().getmany(timeout):  # type: ignore[misc]
            self._guard_fetched_upto[tp] = message.offset + 1
            yield tp, message

    async def perform_seek(self) -> None:
        # Faust seeks each partition back to its committed offset after a rebalance, so that
        # what was fetched and dropped meanwhile is read again; a partition never committed is
        # left where the fetcher was. Send it back to its beginning too.
        await super().perform_seek()  # type: ignore[misc]
        for tp in self.assignment():
            if self._guarded(tp.topic) and self._committed_offset.get(tp) is None:
                await self.seek(tp, 0)

    # ---------------------------------------------------------------- the agent's side
    def mark_handled(self, messages: Iterable[Any]) -> None:
        """The agent has landed these records (a checkpoint): their acks may now count.

        A stream acks a batch as soon as it asks for the next one, which with checkpoints is
        usually before the batch landed: such an ack was refused then, and counts now.
        """
        handled, refused = self._guard_handled, self._guard_refused
        late = []
        for message in messages:
            handled.add(message)
            if message in refused:
                refused.discard(message)
                late.append(message)
        for message in late:
            message.acked = False  # set by the refusal; Faust's ack tests it
            super().ack(message)  # type: ignore[misc]
        self.guard_stats.deferred += len(late)
        self._guard_last_handled = time.monotonic()

    def committed_offsets(self) -> dict[Any, int]:
        """The committed offset of each assigned partition the app commits (as last known)."""
        assigned = self.assignment()
        return {
            tp: offset
            for tp, offset in self._committed_offset.items()
            if offset is not None and tp in assigned and self._guarded(tp.topic)
        }

    def _guarded(self, topic: str) -> bool:
        """Topics whose offsets the app commits (changelogs are positioned by recovery)."""
        return bool(self.app.topics.acks_enabled_for(topic))

    def _refuse(self, message: Any) -> bool:
        """Let Faust forget the record (shutdown waits for it) without committing its offset,
        until it is marked handled."""
        if message.acked:
            return False
        message.acked = True
        self._guard_refused.add(message)
        self._unacked_messages.discard(message)
        waiting = self._waiting_for_ack
        if waiting is not None and not waiting.done():
            waiting.set_result(None)
        self.guard_stats.refused += 1
        return False

    # ---------------------------------------------------------------- stalls
    async def resolve_stalls(self, *, busy: bool = False) -> None:
        """Free every partition whose commit waits for an offset nobody will ack.

        `busy`: a batch is being handled right now (a slow one, say while Redis is down), so
        records fetched and not yet acked may well be in it: the agent is not idle.
        """
        now = time.monotonic()
        idle = not busy and now - self._guard_last_handled >= IDLE_SECONDS
        current: set[tuple[Any, int]] = set()
        for tp in self.assignment():
            if not self._guarded(tp.topic):
                continue
            missing = stalled_at(
                self._acked.get(tp, ()),
                self._committed_offset.get(tp),
                self._guard_fetched_upto.get(tp, 0),
                idle,
            )
            if missing is None:
                continue
            current.add((tp, missing))
            since = self._guard_stalls.setdefault((tp, missing), now)
            if now - since >= STALL_GRACE_SECONDS:
                await self._resolve(tp, missing)
                self._guard_stalls.pop((tp, missing), None)
        for stale in set(self._guard_stalls) - current:
            del self._guard_stalls[stale]

    async def _resolve(self, tp: Any, missing: int) -> None:
        found = await self._first_record_from(tp, missing)
        if found is None:
            return
        if found > missing:
            # No record between `missing` and `found` (control records of a transactional
            # producer): nothing to handle there.
            acked, index = self._acked[tp], self._acked_index[tp]
            for offset in range(missing, found):
                if offset not in index:
                    index.add(offset)
                    acked.append(offset)
            self.guard_stats.holes += found - missing
            log.info("%s: offsets %d-%d hold no record; counted as done", tp, missing, found - 1)
        else:
            self.guard_stats.rewound += 1
            log.warning(
                "%s: record %d was skipped by the stream and never handled; reading again from it",
                tp,
                missing,
            )
            await self.seek(tp, missing)

    async def _first_record_from(self, tp: Any, offset: int) -> int | None:
        probe = await self._probe_consumer()
        partition = TopicPartition(tp.topic, tp.partition)
        probe.assign([partition])
        probe.seek(partition, offset)
        batch = await probe.getmany(partition, timeout_ms=3000, max_records=1)
        records = batch.get(partition) or []
        return records[0].offset if records else None

    def _bootstrap(self) -> list[str]:
        transport = self.transport
        return list(server_list(transport.url, transport.default_port))

    async def _probe_consumer(self) -> AIOKafkaConsumer:
        if self._guard_probe is None:
            probe = AIOKafkaConsumer(
                bootstrap_servers=self._bootstrap(),
                enable_auto_commit=False,
                isolation_level="read_uncommitted",
                max_partition_fetch_bytes=65536,
            )
            await probe.start()
            self._guard_probe = probe
        return self._guard_probe

    async def on_stop(self) -> None:
        await super().on_stop()  # type: ignore[misc]
        if self._guard_probe is not None:
            await self._guard_probe.stop()
            self._guard_probe = None
