"""The worker's bulk producer, against a fake aiokafka producer: placement, batching, offsets."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.errors import KafkaTimeoutError

from streams.partitioning import partition_for
from streams.record_writer import Record, RecordWriter


class FakeBatch:
    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.records: list[tuple[bytes | None, bytes | None, Any]] = []

    def append(
        self, *, key: bytes | None, value: bytes | None, timestamp: Any, headers: Any
    ) -> Any:
        size = len(key or b"") + len(value or b"")
        if size > self.budget:
            return None
        self.budget -= size
        self.records.append((key, value, headers))
        return SimpleNamespace(size=size)


class FakeProducer:
    """Batches as aiokafka's, a log per partition, and the offset of each batch's first record."""

    def __init__(self, budget: int = 100, fail: BaseException | None = None) -> None:
        self.budget = budget
        self.fail = fail
        self.logs: defaultdict[tuple[str, int], list[Any]] = defaultdict(list)
        self.batches: list[tuple[str, int, int]] = []  # (topic, partition, records)
        self.started = self.stopped = False

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    async def partitions_for(self, topic: str) -> set[int]:
        return set(range(4))

    def create_batch(self) -> FakeBatch:
        return FakeBatch(self.budget)

    async def send_batch(self, batch: FakeBatch, topic: str, *, partition: int) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.fail is not None:
            future.set_exception(self.fail)
            return future
        log = self.logs[(topic, partition)]
        future.set_result(SimpleNamespace(offset=len(log)))
        log.extend(batch.records)
        self.batches.append((topic, partition, len(batch.records)))
        return future


def _writer(producer: FakeProducer) -> RecordWriter:
    return RecordWriter("unused:9092", producer_factory=lambda: producer)


async def test_records_go_where_kafkas_partitioner_would_put_them_and_last_offsets_come_back() -> (
    None
):
    producer = FakeProducer()
    writer = _writer(producer)
    records = [
        Record("changelog", b"o:a", b"1", 2),  # explicit partition
        Record("changelog", b"o:b", b"2", 2),
        Record("tier-changes", b"o:a", b"x"),  # keyed: murmur2 of the key, like Java's client
        Record("tier-changes", b"o:a", b"y"),
    ]
    last = await writer.write(records)
    keyed = partition_for(b"o:a", 4)
    assert producer.logs[("changelog", 2)] == [(b"o:a", b"1", []), (b"o:b", b"2", [])]
    assert producer.logs[("tier-changes", keyed)] == [(b"o:a", b"x", []), (b"o:a", b"y", [])]
    assert last == {("changelog", 2): 1, ("tier-changes", keyed): 1}

    # The next write continues each partition's log; the offsets are the last written.
    assert await writer.write([Record("changelog", b"o:c", b"3", 2)]) == {("changelog", 2): 2}


async def test_a_full_batch_is_sent_and_the_rest_goes_in_the_next_one() -> None:
    producer = FakeProducer(budget=10)
    writer = _writer(producer)
    records = [Record("t", b"k", bytes(4), 0) for _ in range(5)]  # 5 bytes each: 2 per batch
    last = await writer.write(records)
    assert [n for _, _, n in producer.batches] == [2, 2, 1]
    assert len(producer.logs[("t", 0)]) == 5
    assert last == {("t", 0): 4}


async def test_keyless_records_are_spread_over_the_partitions() -> None:
    producer = FakeProducer()
    writer = _writer(producer)
    await writer.write([Record("t", None, b"v") for _ in range(8)])
    assert sorted(len(log) for log in producer.logs.values()) == [2, 2, 2, 2]


async def test_a_record_larger_than_a_batch_is_refused_with_its_size() -> None:
    writer = _writer(FakeProducer(budget=10))
    with pytest.raises(ValueError, match="a record of 12 bytes fits no batch"):
        await writer.write([Record("t", b"k", bytes(11), 0)])


async def test_a_failed_send_raises_and_reset_builds_a_new_producer() -> None:
    failing = FakeProducer(fail=KafkaTimeoutError())
    healthy = FakeProducer()
    producers = iter([failing, healthy])
    writer = RecordWriter("unused:9092", producer_factory=lambda: next(producers))
    with pytest.raises(KafkaTimeoutError):
        await writer.write([Record("t", b"k", b"v", 0)])
    await writer.reset()
    assert await writer.write([Record("t", b"k", b"v", 0)]) == {("t", 0): 0}
    await asyncio.sleep(0)  # the failed producer is closed in the background
    assert failing.stopped and healthy.started


async def test_nothing_to_write_sends_nothing() -> None:
    producer = FakeProducer()
    assert await _writer(producer).write([]) == {}
    assert producer.batches == []


async def test_concurrent_starts_start_the_producer_once() -> None:
    """The app's start-up and a first write may both start the writer: aiokafka refuses a
    second start of a producer that is still starting (InvalidStateError)."""

    class SlowStart(FakeProducer):
        starts = 0

        async def start(self) -> None:
            SlowStart.starts += 1
            await asyncio.sleep(0.01)
            await super().start()

    writer = _writer(SlowStart())
    await asyncio.gather(writer.start(), writer.write([Record("t", b"k", b"v", 0)]))
    assert SlowStart.starts == 1
