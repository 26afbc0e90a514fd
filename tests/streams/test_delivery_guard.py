"""The delivery guard's decisions, without a broker: what may be committed, what is acked."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

from faust.types import TP

from streams.delivery_guard import DeliveryGuard, next_commit, stalled_at


def test_commit_runs_from_the_committed_offset_through_consecutive_acks() -> None:
    assert next_commit([10, 11, 12, 14], committed=10) == (13, 3)


def test_a_missing_offset_right_after_the_commit_holds_it_back() -> None:
    """Faust itself would commit 13 here, past the never-handled record 10."""
    assert next_commit([11, 12], committed=10) == (None, 0)
    assert stalled_at([11, 12], 10, 13, idle=False) == 10


def test_acks_behind_the_commit_are_dropped_not_counted() -> None:
    assert next_commit([7, 8, 10, 11], committed=10) == (12, 4)


def test_a_partition_never_committed_is_read_from_offset_zero() -> None:
    assert next_commit([0, 1, 2, 5], committed=None) == (3, 3)
    assert stalled_at([0, 1], None, 2, idle=False) is None
    assert next_commit([1, 2], committed=None) == (None, 0)  # record 0 skipped: hold the commit
    assert stalled_at([1, 2], None, 3, idle=False) == 0


def test_no_stall_while_the_acks_start_at_the_commit() -> None:
    assert stalled_at([10, 11], 10, 12, idle=True) is None
    assert stalled_at([], 10, 10, idle=True) is None  # everything fetched is committed


def test_records_fetched_and_never_acked_hold_the_commit_once_the_agent_is_idle() -> None:
    """The tail of a partition skipped during a rebalance: no later ack would show the hole."""
    assert stalled_at([], 10, 12, idle=True) == 10
    assert stalled_at([], 10, 12, idle=False) is None  # may still be on its way to the agent


class Message:
    def __init__(self, offset: int) -> None:
        self.topic = "t"
        self.tp = TP("t", 0)
        self.offset = offset
        self.acked = False


class Topics:
    def acks_enabled_for(self, topic: str) -> bool:
        return topic == "t"  # a changelog, say, would not be


class App:
    topics = Topics()


class FakeConsumer:
    """The slice of Faust's consumer the guard reads and overrides, with the same methods."""

    def __init__(self) -> None:
        self.app = App()
        self._acked: defaultdict[Any, list[int]] = defaultdict(list)
        self._acked_index: defaultdict[Any, set[int]] = defaultdict(set)
        self._committed_offset: defaultdict[Any, int | None] = defaultdict(lambda: None)
        self._unacked_messages: set[Message] = set()
        self._waiting_for_ack: asyncio.Future[None] | None = None
        self._read_offset: dict[Any, int | None] = {}
        self.seeks: list[tuple[Any, int]] = []
        self._reset_state()

    def ack(self, message: Message) -> bool:
        message.acked = True
        self._unacked_messages.discard(message)
        self._acked[message.tp].append(message.offset)
        self._acked_index[message.tp].add(message.offset)
        return True

    def _reset_state(self) -> None:
        self._read_offset = {}

    def assignment(self) -> set[Any]:
        return {TP("t", 0), TP("changelog", 0)}

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[Any, Message]]:
        for offset in (5, 6):
            yield TP("t", 0), Message(offset)

    async def perform_seek(self) -> None:
        self.seeks.append(("committed", -1))

    async def seek(self, tp: Any, offset: int) -> None:
        self.seeks.append((tp, offset))


class Guarded(DeliveryGuard, FakeConsumer):
    """Mixed in exactly as in `GuardedConsumer`."""


def _guard() -> tuple[Guarded, Guarded]:
    consumer = Guarded()
    return consumer, consumer


def test_only_handled_records_are_acked_toward_a_commit() -> None:
    guard, consumer = _guard()
    skipped, handled = Message(10), Message(11)
    consumer._unacked_messages |= {skipped, handled}
    consumer._committed_offset[TP("t", 0)] = 10

    guard.mark_handled([handled])
    assert consumer.ack(skipped) is False  # the stream skipped it during a rebalance
    assert consumer.ack(handled) is True

    assert consumer._acked[TP("t", 0)] == [11]
    assert consumer._unacked_messages == set()  # shutdown and rebalances do not wait for it
    assert consumer._new_offset(TP("t", 0)) is None  # 10 was never handled: nothing to commit
    assert guard.guard_stats.refused == 1


def test_an_ack_before_its_checkpoint_landed_counts_once_the_record_is_handled() -> None:
    """The stream acks a batch when it takes the next one, before the batch's checkpoint has
    landed: that ack is held back, and counts (once) when the checkpoint marks the record."""
    guard, consumer = _guard()
    tp = TP("t", 0)
    first, second, never = Message(10), Message(11), Message(12)
    consumer._unacked_messages |= {first, second, never}
    consumer._committed_offset[tp] = 10

    for message in (first, second, never):
        assert consumer.ack(message) is False  # not landed yet
    assert consumer._acked[tp] == []
    assert consumer._unacked_messages == set()  # shutdown and rebalances do not wait for it
    assert consumer._new_offset(tp) is None

    guard.mark_handled([first, second])  # their checkpoint landed; `never`'s was abandoned
    assert consumer._acked[tp] == [10, 11]
    assert consumer._new_offset(tp) == 12  # 12 was never handled: the commit stops before it
    guard.mark_handled([first])  # marking again acks nothing twice
    assert consumer._acked[tp] == []
    assert (guard.guard_stats.refused, guard.guard_stats.deferred) == (3, 2)


def test_the_drain_loop_never_sees_a_read_offset() -> None:
    """So it neither drops re-fetched records nor invents gaps after a seek."""
    _, consumer = _guard()
    consumer._read_offset[TP("t", 0)] = 99
    assert consumer._read_offset[TP("t", 0)] is None
    consumer._reset_state()
    consumer._read_offset[TP("t", 0)] = 5
    assert consumer._read_offset[TP("t", 0)] is None


async def test_a_partition_never_committed_goes_back_to_its_beginning_after_a_seek() -> None:
    """Faust's own seek leaves it where the fetcher was, past records it dropped meanwhile.

    A changelog partition is left alone: table recovery positions it.
    """
    _, consumer = _guard()
    consumer._committed_offset[TP("t", 1)] = 7  # not assigned: untouched
    await consumer.perform_seek()
    assert consumer.seeks == [("committed", -1), (TP("t", 0), 0)]


async def test_fetched_offsets_are_remembered_for_stall_detection() -> None:
    guard, consumer = _guard()
    assert [m.offset async for _, m in consumer.getmany(1.0)] == [5, 6]
    assert guard._guard_fetched_upto[TP("t", 0)] == 7


class ProbedGuard(Guarded):
    def __init__(self, first_record: int) -> None:
        super().__init__()
        self.first_record = first_record

    async def _first_record_from(self, tp: Any, offset: int) -> int | None:
        return self.first_record


async def test_a_skipped_record_is_read_again() -> None:
    guard = ProbedGuard(first_record=10)  # the broker has a record at 10
    await guard._resolve(TP("t", 0), 10)
    assert guard.seeks == [(TP("t", 0), 10)]
    assert guard.guard_stats.rewound == 1


async def test_no_idle_stall_while_a_slow_batch_is_in_flight() -> None:
    """Fetched records not yet acked may be in that batch: re-reading them would only churn."""
    guard = ProbedGuard(first_record=0)  # the record at the committed offset exists
    guard._guard_fetched_upto[TP("t", 0)] = 12
    guard._guard_last_handled -= 60  # nothing handled for a minute: a batch stuck on Redis
    guard._guard_stalls[(TP("t", 0), 0)] = 0.0  # seen long ago, so past the grace period
    await guard.resolve_stalls(busy=True)
    assert guard.seeks == []
    guard._guard_stalls[(TP("t", 0), 0)] = 0.0  # the same, once the batch is done
    await guard.resolve_stalls(busy=False)
    assert guard.seeks == [(TP("t", 0), 0)]


async def test_offsets_without_records_count_as_done() -> None:
    guard = ProbedGuard(first_record=12)  # 10 and 11 are transaction markers
    guard._committed_offset[TP("t", 0)] = 10
    guard._acked[TP("t", 0)] = [12, 13]
    await guard._resolve(TP("t", 0), 10)
    assert guard.seeks == []
    assert guard._new_offset(TP("t", 0)) == 14
    assert guard.guard_stats.holes == 2
