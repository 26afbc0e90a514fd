"""The worker's decisions during a Redis outage, without a Redis: skip, hold deletes, back off."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from agents import metrics as m
from agents.processor import RedisJob
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


def _op(contact: str, version: int, *, deleted: bool = False) -> RedisJob:
    return RedisJob("o", contact, version, None if deleted else b"value", 1_000, not deleted)


class FlakyRedis:
    def __init__(self) -> None:
        self.down = False
        self.written: list[RedisJob] = []
        self.calls = 0

    async def write(self, ops: Sequence[RedisJob], prepared: Any = None) -> None:
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
    held = snapshots.take_held_deletes()
    assert [(op.contact_id, op.version, op.snapshot) for op in held] == [("d", 2, None)]
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
async def test_an_empty_batch_never_calls_redis(ops: list[RedisJob]) -> None:
    redis = FlakyRedis()
    snapshots = OutageAwareSnapshots(redis.write, RedisHealth(Clock()))
    await snapshots.apply(ops)
    assert redis.calls == len(ops and [1])


async def test_a_contact_with_nothing_to_show_is_held_as_a_delete_though_its_entry_stays() -> None:
    """A table value that shows nothing (a tombstone, interactions waiting for their
    dispatch) is a removal for Redis: held like the removal of a gone entry."""
    health = RedisHealth(Clock())
    health.failed(OSError("down"), "writing")
    snapshots = OutageAwareSnapshots(FlakyRedis().write, health)
    await snapshots.apply([RedisJob("o", "t", 5, b"value", 1_000, False)])
    held = snapshots.take_held_deletes()
    assert [(op.contact_id, op.version, op.snapshot) for op in held] == [("t", 5, None)]


async def test_a_part_prepared_is_written_with_its_ticket_or_dropped_during_an_outage() -> None:
    """Rendering starts when a part is built (`prepare`); its write takes the ticket, and a
    part that meets an outage is dropped from the renderer and held like any other."""
    tickets: list[Any] = []
    dropped: list[Any] = []
    written: list[Any] = []

    async def write(jobs: Sequence[RedisJob], prepared: Any = None) -> None:
        written.append(prepared)

    health = RedisHealth(Clock())
    snapshots = OutageAwareSnapshots(
        write,
        health,
        prepare=lambda jobs: tickets.append(len(jobs)) or len(tickets),
        drop=dropped.append,
    )
    first = snapshots.prepare([_op("a", 1)])
    await snapshots.apply([_op("a", 1)], first)
    assert (tickets, written, dropped) == ([1], [1], [])
    health.failed(OSError("down"), "writing")
    second = _op("b", 2, deleted=True)
    assert snapshots.prepare([second]) is None  # nothing rendered while Redis is away
    await snapshots.apply([second], "stale")
    assert dropped == ["stale"] and written == [1]
    assert [op.contact_id for op in snapshots.take_held_deletes()] == ["b"]
