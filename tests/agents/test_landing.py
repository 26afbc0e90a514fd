"""The order a batch lands in: outputs acknowledged, then states written and acknowledged.

These tests hold the broker's acknowledgements back by hand, so they fail if `land` wrote a state
before the outputs were acknowledged, or returned (letting Faust ack the batch) before the
changelog records were.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import pytest

from agents.engagement import TableStore
from agents.landing import land
from agents.processor import Outbound, RedisOp

OUT = [Outbound("tier-changes", b"o:c", b"{}"), Outbound("dispatch-status", b"o:c", b"{}")]
OPS = [RedisOp("o", "c", 1, b"{}", [])]


class HeldAcks:
    """Futures the test resolves itself, standing in for the broker's acknowledgements."""

    def __init__(self) -> None:
        self.futures: list[asyncio.Future[Any]] = []

    def new(self) -> asyncio.Future[Any]:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.futures.append(fut)
        return fut

    def ack_all(self) -> None:
        for fut in self.futures:
            if not fut.done():
                fut.set_result(None)


class FakeOutputs:
    def __init__(self, acks: HeldAcks, log: list[str]) -> None:
        self.acks, self.log = acks, log

    def send(self, items: Sequence[Outbound]) -> Sequence[Awaitable[Any]]:
        self.log.extend(f"send {item.topic}" for item in items)
        return [self.acks.new() for _ in items]


class FakeStates:
    def __init__(self, acks: HeldAcks, log: list[str]) -> None:
        self.acks, self.log = acks, log

    def flush(self) -> Sequence[Awaitable[Any]]:
        self.log.append("flush states")
        return [self.acks.new()]

    def drop(self) -> None:
        self.log.append("drop states")


class FakeSnapshots:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    async def apply(self, ops: Sequence[RedisOp]) -> None:
        self.log.append(f"redis {len(ops)}")


def _landing(
    outputs_acks: HeldAcks,
    changelog_acks: HeldAcks,
    log: list[str],
    publish: Sequence[Outbound] = OUT,
    still_owner: Callable[[], bool] = lambda: True,
) -> asyncio.Task[tuple[bool, float]]:
    """`land` on the fakes, running in the background while the test hands out the acks."""
    return asyncio.create_task(
        land(
            publish,
            OPS,
            FakeOutputs(outputs_acks, log),
            FakeStates(changelog_acks, log),
            FakeSnapshots(log),
            still_owner,
        )
    )


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_states_are_written_only_after_every_output_is_acknowledged() -> None:
    outputs_acks, changelog_acks, log = HeldAcks(), HeldAcks(), []
    task = _landing(outputs_acks, changelog_acks, log)
    await _settle()
    assert log == ["send tier-changes", "send dispatch-status"]  # states held back
    outputs_acks.futures[0].set_result(None)
    await _settle()
    assert "flush states" not in log  # one output still unacknowledged
    outputs_acks.ack_all()
    await _settle()
    assert log[2:] == ["flush states", "redis 1"]
    assert not task.done()  # changelog not acknowledged yet: the batch must not be acked
    changelog_acks.ack_all()
    await _settle()
    assert task.done()
    assert await task == (True, pytest.approx(0, abs=5))


async def test_a_failed_output_stops_the_batch_before_any_state_is_written() -> None:
    acks, log = HeldAcks(), []
    task = _landing(acks, HeldAcks(), log)
    await _settle()
    acks.futures[0].set_exception(RuntimeError("broker said no"))
    acks.ack_all()
    with pytest.raises(RuntimeError, match="broker said no"):
        await task
    assert "flush states" not in log


async def test_a_failed_changelog_write_fails_the_batch() -> None:
    outputs_acks, changelog_acks, log = HeldAcks(), HeldAcks(), []
    task = _landing(outputs_acks, changelog_acks, log, publish=[])
    await _settle()
    changelog_acks.futures[0].set_exception(RuntimeError("not leader"))
    with pytest.raises(RuntimeError, match="not leader"):
        await task


async def test_a_worker_that_lost_the_partitions_meanwhile_writes_no_state() -> None:
    """Stopping, or rebalanced while the outputs were in flight: the next owner may already
    have recovered these contacts, so a state written now would land after its own."""
    acks, log = HeldAcks(), []
    owner = {"still": True}
    task = _landing(acks, HeldAcks(), log, still_owner=lambda: owner["still"])
    await _settle()
    owner["still"] = False  # a rebalance took a partition while the outputs were in flight
    acks.ack_all()
    landed, _ = await task
    assert landed is False
    assert log[2:] == ["drop states"]  # no table write, no Redis write


class Event:
    """Stands in for the Faust event a write is filed under (it must be weakly referenceable)."""


class FakeTable:
    """The slice of `ContactTable` that `TableStore` uses."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {b"k0": b"old"}
        self.sent: list[asyncio.Future[Any]] = []

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self.data[key] = value
        self.sent.append(asyncio.get_running_loop().create_future())

    def pop(self, key: bytes, default: Any = None) -> Any:
        self.sent.append(asyncio.get_running_loop().create_future())
        return self.data.pop(key, default)

    def take_unconfirmed(self) -> list[asyncio.Future[Any]]:
        taken, self.sent = self.sent, []
        return taken


async def test_table_store_holds_writes_until_flush_and_reads_its_own_writes() -> None:
    table = FakeTable()
    store = TableStore(table)  # type: ignore[arg-type]
    store.put(b"k1", b"new", ref=Event())
    store.delete(b"k0", ref=Event())
    assert table.data == {b"k0": b"old"}  # nothing written yet
    assert store.get(b"k1") == b"new"
    assert store.get(b"k0") is None
    changelog = store.flush()
    assert table.data == {b"k1": b"new"}
    assert len(changelog) == 2  # one changelog future per write, for the batch to await
    assert store.flush() == []  # nothing held twice
