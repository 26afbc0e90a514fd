"""The ingest's commits (`streams.ingest.Ingest._commit_when_due`): paced, in order, one in
flight, and never of offsets whose envelopes were not acknowledged. No broker: a fake consumer
records what it was asked to commit."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from aiokafka import TopicPartition

from streams.ingest import COMMIT_EVERY_SECONDS, Ingest

A = TopicPartition("engagement.dispatch", 0)
B = TopicPartition("engagement.delivery", 3)


class Consumer:
    def __init__(self) -> None:
        self.commits: list[dict[TopicPartition, int]] = []
        self.release: asyncio.Event | None = None  # when set: commits wait for it
        self.assigned = {A, B}

    def assignment(self) -> set[TopicPartition]:
        return self.assigned

    async def commit(self, offsets: dict[TopicPartition, Any]) -> None:
        if self.release is not None:
            await self.release.wait()
        self.commits.append({tp: meta.offset for tp, meta in offsets.items()})


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def ingest_without_broker(clock: Callable[[], float] = time.monotonic) -> Ingest:
    """An ingest never started (no broker): its consumer is for the test to set."""
    return Ingest(
        bootstrap="unused:9092",
        group_id="g",
        inputs=["engagement.dispatch"],
        envelope_topic="engagement.internal.envelopes",
        partitions=8,
        max_records=100,
        max_wait_seconds=0.02,
        max_record_bytes=1000,
        max_envelope_bytes=10_000,
        dead_letter_topic="engagement.dead-letters",
        clock=clock,
    )


def _ingest() -> tuple[Ingest, Consumer, Clock]:
    clock = Clock()
    ingest = ingest_without_broker(clock)
    consumer = Consumer()
    ingest.consumer = consumer
    return ingest, consumer, clock


async def _framed(ingest: Ingest, offsets: dict[TopicPartition, int]) -> None:
    """What `_forward` does once a fetch's envelopes are acknowledged."""
    ingest._to_commit.update(offsets)
    await ingest._commit_when_due()


async def test_fetches_within_the_interval_share_one_commit_of_their_latest_offsets() -> None:
    ingest, consumer, clock = _ingest()
    await _framed(ingest, {A: 10})
    await ingest.committed()
    assert consumer.commits == [{A: 10}]  # the first one at once
    clock.now += COMMIT_EVERY_SECONDS / 4
    await _framed(ingest, {A: 20, B: 5})
    clock.now += COMMIT_EVERY_SECONDS / 4
    await _framed(ingest, {A: 30})
    await ingest.committed()
    assert consumer.commits == [{A: 10}]  # paced: nothing more yet
    clock.now += COMMIT_EVERY_SECONDS
    await _framed(ingest, {B: 9})
    await ingest.committed()
    assert consumer.commits == [{A: 10}, {A: 30, B: 9}]


async def test_a_quiet_stream_still_commits_what_is_left_once_due() -> None:
    ingest, consumer, clock = _ingest()
    await _framed(ingest, {A: 10})
    await _framed(ingest, {A: 11})
    await ingest.committed()
    assert consumer.commits == [{A: 10}]
    await ingest._commit_when_due()  # an empty fetch, too soon
    await ingest.committed()
    assert consumer.commits == [{A: 10}]
    clock.now += COMMIT_EVERY_SECONDS
    await ingest._commit_when_due()  # an empty fetch, later
    await ingest.committed()
    assert consumer.commits == [{A: 10}, {A: 11}]


async def test_one_commit_in_flight_at_a_time_and_a_stop_commits_the_rest() -> None:
    ingest, consumer, clock = _ingest()
    consumer.release = asyncio.Event()
    await _framed(ingest, {A: 10})
    clock.now += 2 * COMMIT_EVERY_SECONDS
    await _framed(ingest, {A: 20})  # due, but the first has not finished
    await asyncio.sleep(0)
    assert ingest._to_commit == {A: 20}
    consumer.release.set()
    await ingest._commit_when_due(force=True)  # as `on_stop` does
    await ingest.committed()
    assert consumer.commits == [{A: 10}, {A: 20}]  # in order
    assert ingest._to_commit == {}


async def test_a_partition_revoked_since_its_fetch_is_left_to_its_new_owner() -> None:
    ingest, consumer, clock = _ingest()
    await _framed(ingest, {A: 10})
    await ingest.committed()
    await _framed(ingest, {A: 20, B: 7})  # paced: pending
    consumer.assigned = {B}  # a rebalance took A away meanwhile
    clock.now += COMMIT_EVERY_SECONDS
    await ingest._commit_when_due()
    await ingest.committed()
    assert consumer.commits == [{A: 10}, {B: 7}]
    consumer.assigned = set()
    await _framed(ingest, {B: 9})
    clock.now += COMMIT_EVERY_SECONDS
    await ingest._commit_when_due()
    await ingest.committed()
    assert consumer.commits == [{A: 10}, {B: 7}]  # nothing of its own left: no commit at all
