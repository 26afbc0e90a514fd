"""The worker's decisions during a Redis outage, without a Redis: skip, hold deletes, back off."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from agents import metrics as m
from agents.processor import SnapshotWrite
from agents.redis_outage import (
    FIRST_PROBE_SECONDS,
    MAX_PROBE_SECONDS,
    OutageAwareSnapshots,
    RedisHealth,
)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _op(contact: str, version: int, *, deleted: bool = False) -> SnapshotWrite:
    return SnapshotWrite("o", contact, version, None if deleted else b"{}", {})


class FlakyRedis:
    def __init__(self) -> None:
        self.down = False
        self.written: list[SnapshotWrite] = []
        self.calls = 0

    async def write(self, ops: Sequence[SnapshotWrite]) -> None:
        self.calls += 1
        if self.down:
            raise RedisConnectionError("Connection closed by server.")
        self.written.extend(ops)


def test_the_probe_delay_doubles_up_to_a_cap_and_resets_on_recovery() -> None:
    clock = Clock()
    health = RedisHealth(clock)
    outages = m.REDIS_OUTAGES._value.get()
    health.failed(OSError("refused"), "writing")
    assert not health.up and m.REDIS_UP._value.get() == 0
    assert m.REDIS_OUTAGES._value.get() == outages + 1
    assert not health.probe_due()
    clock.now += FIRST_PROBE_SECONDS
    assert health.probe_due()
    delays = []
    for _ in range(8):
        health.failed(OSError("refused"), "probing")
        assert health.outage is not None
        delays.append(health.outage.delay)
    assert delays[:3] == [2.0, 4.0, 8.0] and delays[-1] == MAX_PROBE_SECONDS
    assert m.REDIS_OUTAGES._value.get() == outages + 1  # one outage, however many retries
    assert "OSError: refused" in health.describe() and "since" in health.describe()
    health.recovered()
    assert health.up and m.REDIS_UP._value.get() == 1 and health.describe() == "redis ok"


async def test_a_failed_write_starts_the_outage_and_later_batches_do_not_wait_for_redis() -> None:
    redis = FlakyRedis()
    health = RedisHealth(Clock())
    snapshots = OutageAwareSnapshots(redis.write, health)
    await snapshots.apply([_op("a", 1)])
    assert [op.contact_id for op in redis.written] == ["a"]

    redis.down = True
    await snapshots.apply([_op("b", 1)])  # raises inside, never to the checkpoint
    assert not health.up
    calls = redis.calls
    await snapshots.apply([_op("c", 1), _op("d", 2, deleted=True)])
    assert redis.calls == calls  # not even tried while down: the batch lands at once
    assert [op.contact_id for op in snapshots.take_held_deletes()] == ["d"]
    assert snapshots.take_held_deletes() == []


async def test_held_deletes_keep_the_newest_and_forget_a_contact_created_again() -> None:
    health = RedisHealth(Clock())
    health.failed(OSError("down"), "writing")
    snapshots = OutageAwareSnapshots(FlakyRedis().write, health)
    await snapshots.apply([_op("x", 1, deleted=True), _op("y", 1, deleted=True)])
    await snapshots.apply([_op("x", 3, deleted=True), _op("y", 4)])  # y is back: rebuilt
    held = snapshots.take_held_deletes()
    assert [(op.contact_id, op.version) for op in held] == [("x", 3)]


async def test_held_deletes_are_bounded() -> None:
    health = RedisHealth(Clock())
    health.failed(OSError("down"), "writing")
    snapshots = OutageAwareSnapshots(FlakyRedis().write, health, max_held_deletes=2)
    await snapshots.apply([_op(f"c{i}", 1, deleted=True) for i in range(5)])
    assert len(snapshots.take_held_deletes()) == 2
    assert snapshots.deletes_dropped == 3


@pytest.mark.parametrize("ops", [[], [_op("a", 1)]])
async def test_an_empty_batch_never_calls_redis(ops: list[SnapshotWrite]) -> None:
    redis = FlakyRedis()
    snapshots = OutageAwareSnapshots(redis.write, RedisHealth(Clock()))
    await snapshots.apply(ops)
    assert redis.calls == len(ops and [1])
