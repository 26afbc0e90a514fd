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

The guard, installed on the app's consumer, closes all four:

* only records the agent marked as handled are acked; any other record's offset stays
  uncommitted (1);
* every fetched record is delivered, however it compares with what was read before (2, 3):
  the agent is idempotent, so a record read twice changes nothing;
* the committable offset is the end of the run of acked offsets that starts exactly at the
  committed one (4);
* after the seek that ends a rebalance, a partition never committed is sent back to its
  beginning like the others are to their committed offsets (Faust leaves it where the fetcher
  was, past whatever it fetched and dropped meanwhile);
* `resolve_stalls` (run by the worker every few seconds) looks at a partition whose commit is
  held by a missing offset (acks wait behind it, or, with the agent idle, records past it were
  fetched and none was acked) and asks the broker what is there: no record (a transaction
  marker, say) and the offsets count as done; a record, and the partition is sought back to it
  so it is read again.

It touches Faust's private consumer state (`_acked`, `_committed_offset`, `_read_offset`), so
the version is pinned and `install` checks that state is there; the pure decisions are
functions below, tested without a broker (`tests/streams/test_delivery_guard.py`).
"""

from __future__ import annotations

import logging
import time
import weakref
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

log = logging.getLogger("engagement_monitor.delivery")

STALL_GRACE_SECONDS = 2.0
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


class DeliveryGuard:
    """Installed on one app's consumer; the agent calls `handled`, the worker `resolve_stalls`."""

    def __init__(self, app: Any, bootstrap: str, topics: Iterable[str]) -> None:
        self.app = app
        self.bootstrap = bootstrap
        self.topics = frozenset(topics)
        self._handled: weakref.WeakSet[Any] = weakref.WeakSet()
        self._stalls: dict[tuple[Any, int], float] = {}
        self._fetched_upto: dict[Any, int] = {}  # per partition: 1 + last offset fetched
        self._last_handled = time.monotonic()
        self._probe: AIOKafkaConsumer | None = None
        self.refused = 0  # acks refused: records a stream skipped without handing them over
        self.rewound = 0  # partitions sought back to a record that was never handled
        self.holes = 0  # offsets with no record (transaction markers) counted as done

    # ---------------------------------------------------------------- install
    def install(self) -> None:
        consumer = self.app.consumer
        for name in ("_acked", "_acked_index", "_committed_offset", "_unacked_messages"):
            if not hasattr(consumer, name):
                raise RuntimeError(
                    f"faust consumer has no {name}: the delivery guard needs the pinned "
                    "faust-streaming version (see pyproject.toml)"
                )
        original_ack = consumer.ack
        original_reset = consumer._reset_state

        def ack(message: Any) -> bool:
            if message in self._handled:
                return bool(original_ack(message))
            return self._refuse(message)

        def new_offset(tp: Any) -> int | None:
            acked = consumer._acked[tp]
            if not acked:
                return None
            acked.sort()
            offset, used = next_commit(acked, consumer._committed_offset[tp])
            if used:
                consumer._acked_index[tp].difference_update(acked[:used])
                del acked[:used]
            return offset

        def reset_state() -> None:
            original_reset()
            consumer._read_offset = _NeverRead()

        original_getmany = consumer.getmany

        async def getmany(timeout: float) -> AsyncIterator[tuple[Any, Any]]:  # noqa: ASYNC109
            async for tp, message in original_getmany(timeout):
                self._fetched_upto[tp] = message.offset + 1
                yield tp, message

        original_perform_seek = consumer.perform_seek

        async def perform_seek() -> None:
            # Faust seeks each partition back to its committed offset after a rebalance, so
            # that what was fetched and dropped meanwhile is read again; a partition never
            # committed is left where the fetcher was. Send it back to its beginning too.
            await original_perform_seek()
            for tp in consumer.assignment():
                if tp.topic in self.topics and consumer._committed_offset.get(tp) is None:
                    await consumer.seek(tp, 0)

        consumer.ack = ack
        consumer._new_offset = new_offset
        consumer._reset_state = reset_state
        consumer._read_offset = _NeverRead()
        consumer.getmany = getmany
        consumer.perform_seek = perform_seek

    def _refuse(self, message: Any) -> bool:
        """Let Faust forget the record (shutdown waits for it) without committing its offset."""
        consumer = self.app.consumer
        if message.acked:
            return False
        message.acked = True
        consumer._unacked_messages.discard(message)
        waiting = consumer._waiting_for_ack
        if waiting is not None and not waiting.done():
            waiting.set_result(None)
        self.refused += 1
        return False

    def handled(self, messages: Iterable[Any]) -> None:
        """The agent has applied these records (a batch): their acks may now count."""
        self._handled.update(messages)
        self._last_handled = time.monotonic()

    # ---------------------------------------------------------------- stalls
    async def resolve_stalls(self, *, busy: bool = False) -> None:
        """Free every partition whose commit waits for an offset nobody will ack.

        `busy`: a batch is being handled right now (a slow one, say while Redis is down), so
        records fetched and not yet acked may well be in it: the agent is not idle.
        """
        consumer = self.app.consumer
        now = time.monotonic()
        idle = not busy and now - self._last_handled >= IDLE_SECONDS
        current: set[tuple[Any, int]] = set()
        for tp in consumer.assignment():
            if tp.topic not in self.topics:
                continue
            missing = stalled_at(
                consumer._acked.get(tp, ()),
                consumer._committed_offset.get(tp),
                self._fetched_upto.get(tp, 0),
                idle,
            )
            if missing is None:
                continue
            current.add((tp, missing))
            since = self._stalls.setdefault((tp, missing), now)
            if now - since >= STALL_GRACE_SECONDS:
                await self._resolve(tp, missing)
                self._stalls.pop((tp, missing), None)
        for stale in set(self._stalls) - current:
            del self._stalls[stale]

    async def _resolve(self, tp: Any, missing: int) -> None:
        found = await self._first_record_from(tp, missing)
        if found is None:
            return
        consumer = self.app.consumer
        if found > missing:
            # No record between `missing` and `found` (control records of a transactional
            # producer): nothing to handle there.
            acked, index = consumer._acked[tp], consumer._acked_index[tp]
            for offset in range(missing, found):
                if offset not in index:
                    index.add(offset)
                    acked.append(offset)
            self.holes += found - missing
            log.info("%s: offsets %d-%d hold no record; counted as done", tp, missing, found - 1)
        else:
            self.rewound += 1
            log.warning(
                "%s: record %d was skipped by the stream and never handled; reading again from it",
                tp,
                missing,
            )
            await consumer.seek(tp, missing)

    async def _first_record_from(self, tp: Any, offset: int) -> int | None:
        probe = await self._probe_consumer()
        partition = TopicPartition(tp.topic, tp.partition)
        probe.assign([partition])
        probe.seek(partition, offset)
        batch = await probe.getmany(partition, timeout_ms=3000, max_records=1)
        records = batch.get(partition) or []
        return records[0].offset if records else None

    async def _probe_consumer(self) -> AIOKafkaConsumer:
        if self._probe is None:
            probe = AIOKafkaConsumer(
                bootstrap_servers=self.bootstrap,
                enable_auto_commit=False,
                isolation_level="read_uncommitted",
                max_partition_fetch_bytes=65536,
            )
            await probe.start()
            self._probe = probe
        return self._probe

    async def close(self) -> None:
        if self._probe is not None:
            await self._probe.stop()
            self._probe = None
