"""The worker's own producer: many records per call, batched per partition, acknowledged together.

A checkpoint writes thousands of records at once (outputs, then one changelog record per dirty
contact). Through Faust each would cost a ``FutureMessage``, the producer buffer (which stalls
the conductor past 100 pending sends) and a debug log call; through aiokafka's ``send`` still
~15 µs. Here each (topic, partition) gets aiokafka ``BatchBuilder``s filled with ``append``
(under a microsecond a record) and handed over with ``send_batch``. ``write`` returns once the
broker has acknowledged every record (``acks=all``, idempotent producer), with the offset of the
last record written to each partition: what the table store records as its changelog offset.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Iterable
from typing import Any

from aiokafka import AIOKafkaProducer

from streams.partitioning import partition_for
from streams.records import Record

log = logging.getLogger("engagement_monitor.writer")

# Under the broker's default message.max.bytes (1 MiB + 12): one batch is one message set.
MAX_BATCH_BYTES = 1_000_000


class RecordWriter:
    """One idempotent ``acks=all`` producer; ``write`` many records, get last offsets back."""

    def __init__(
        self,
        bootstrap: str,
        *,
        linger_ms: int = 1,
        request_timeout_ms: int = 40_000,
        producer_factory: Callable[[], Any] | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.linger_ms = linger_ms
        self.request_timeout_ms = request_timeout_ms
        self.producer_factory = producer_factory
        self.producer: Any = None  # built in start() (aiokafka wants the running loop)
        self._partitions: dict[str, int] = {}
        self._spread = itertools.count()
        self._started = False
        self._starting = asyncio.Lock()
        self._closing: set[asyncio.Future[None]] = set()

    async def start(self) -> None:
        """Start the producer once, however many callers ask at the same time (the app's
        start-up and a first write, say: aiokafka refuses a second concurrent start)."""
        async with self._starting:
            if self._started:
                return
            if self.producer is None:
                self.producer = self._new_producer()
            await self.producer.start()
            self._started = True

    def _new_producer(self) -> Any:
        if self.producer_factory is not None:
            return self.producer_factory()
        return AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            acks="all",
            enable_idempotence=True,
            linger_ms=self.linger_ms,
            max_batch_size=MAX_BATCH_BYTES,
            max_request_size=MAX_BATCH_BYTES + 65_536,
            request_timeout_ms=self.request_timeout_ms,
        )

    async def stop(self) -> None:
        if self.producer is not None and self._started:
            await self.producer.stop()
        self._started = False

    async def reset(self) -> None:
        """After a failed write: the next write starts on a fresh producer (one that failed may
        hold a fatal error, or batches for a broker that is gone). The old one is closed in the
        background, so a dead broker cannot hold this up."""
        old, self.producer = self.producer, None
        self._started = False
        if old is not None:
            self._closing.add(asyncio.ensure_future(_close_quietly(old)))
            self._closing = {task for task in self._closing if not task.done()}

    async def partition_count(self, topic: str) -> int:
        count = self._partitions.get(topic)
        if count is None:
            found = await self.producer.partitions_for(topic)
            count = self._partitions[topic] = len(found)
        return count

    async def _place(self, records: Iterable[Record]) -> dict[tuple[str, int], list[Record]]:
        records = list(records)
        # Partition counts looked up once per topic, not awaited once per record.
        counts: dict[str, int] = {}
        for topic in {record.topic for record in records if record.partition is None}:
            counts[topic] = await self.partition_count(topic)
        groups: dict[tuple[str, int], list[Record]] = {}
        for record in records:
            partition = record.partition
            if partition is None:
                count = counts[record.topic]
                if record.key is None:
                    partition = next(self._spread) % count
                else:
                    partition = partition_for(record.key, count)
            group = groups.get((record.topic, partition))
            if group is None:
                group = groups[(record.topic, partition)] = []
            group.append(record)
        return groups

    async def write(self, records: Iterable[Record]) -> dict[tuple[str, int], int]:
        """Send every record and wait for the broker's acknowledgement of all of them.

        Returns the offset of the last record per (topic, partition). Raises what the producer
        raises (a record that fits no batch is a ``ValueError``; Kafka errors as they come).
        """
        if not self._started:
            await self.start()
        groups = await self._place(records)
        producer = self.producer
        pending: list[tuple[tuple[str, int], int, asyncio.Future[Any]]] = []
        for (topic, partition), group in groups.items():
            batch = producer.create_batch()
            count = 0
            for record in group:
                if not _append(batch, record):
                    # Full: hand it over and start the next one (a record that fits no empty
                    # batch is refused rather than sent alone past the broker's limit).
                    if count == 0:
                        raise ValueError(_too_large(record))
                    future = await producer.send_batch(batch, topic, partition=partition)
                    pending.append(((topic, partition), count, future))
                    batch = producer.create_batch()
                    count = 0
                    if not _append(batch, record):
                        raise ValueError(_too_large(record))
                count += 1
            if count:
                future = await producer.send_batch(batch, topic, partition=partition)
                pending.append(((topic, partition), count, future))
        if not pending:
            return {}
        acked = await asyncio.gather(*(future for _, _, future in pending))
        last: dict[tuple[str, int], int] = {}
        for (tp, count, _), metadata in zip(pending, acked, strict=True):
            end = metadata.offset + count - 1
            if end > last.get(tp, -1):
                last[tp] = end
        return last


def _append(batch: Any, record: Record) -> bool:
    appended = batch.append(
        key=record.key, value=record.value, timestamp=None, headers=record.headers
    )
    return appended is not None


def _too_large(record: Record) -> str:
    size = len(record.value or b"") + len(record.key or b"")
    return f"a record of {size} bytes fits no batch of {MAX_BATCH_BYTES} for {record.topic}"


async def _close_quietly(producer: Any) -> None:
    try:
        await asyncio.wait_for(producer.stop(), timeout=30)
    except Exception:  # closing a failed producer: nothing left to save
        log.debug("closing a failed producer", exc_info=True)
