"""The order of a checkpoint's writes (`agents.checkpoint`), with no broker, store or Redis.

Each fake records what it was asked, into one shared log, so the tests read the steps in the
order they happened: outputs, ownership, changelog, store (with the changelog's offsets), Redis.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from aiokafka.errors import KafkaConnectionError

from agents.checkpoint import MAX_RETRY_SECONDS, Checkpoint
from agents.processor import CheckpointBatch, ContactChange, Outbound, RedisJob
from streams.checkpoint_store import Write
from streams.records import Record
from streams.topics import TopicNames

NAMES = TopicNames("engagement.")
CHANGELOG = "em-contacts-changelog"


class Writer:
    def __init__(self, log: list[Any], failures: int = 0) -> None:
        self.log = log
        self.failures = failures
        self.offsets: dict[tuple[str, int], int] = {}

    async def write(self, records: Iterable[Record]) -> dict[tuple[str, int], int]:
        records = list(records)
        if self.failures:
            self.failures -= 1
            self.log.append(("write failed", records[0].topic))
            raise KafkaConnectionError("broker gone")
        last: dict[tuple[str, int], int] = {}
        for record in records:
            tp = (record.topic, record.partition if record.partition is not None else -1)
            self.offsets[tp] = last[tp] = self.offsets.get(tp, -1) + 1
        self.log.append(("written", [(r.topic, r.key, r.value) for r in records]))
        return last

    async def reset(self) -> None:
        self.log.append(("reset",))


class Store:
    def __init__(self, log: list[Any]) -> None:
        self.log = log

    def write_checkpoint(self, partition: int, writes: Sequence[Write], offset: int) -> None:
        self.log.append(("store", partition, list(writes), offset))


class Snapshots:
    def __init__(self, log: list[Any]) -> None:
        self.log = log

    def prepare(self, jobs: Sequence[RedisJob]) -> Any:
        self.log.append(("prepare", [j.contact_id for j in jobs]))
        return "ticket"

    def drop(self, prepared: Any) -> None:
        self.log.append(("drop", prepared))

    async def apply(self, jobs: Sequence[RedisJob], prepared: Any = None) -> None:
        self.log.append(("redis", [(j.org_id, j.contact_id, j.version) for j in jobs]))


def _change(contact: str, partition: int, value: bytes | None) -> ContactChange:
    key = f"o:{contact}".encode()
    job = RedisJob("o", contact, 7, value, 1_000, value is not None)
    return ContactChange(key, partition, value, job, None)


def _batch() -> CheckpointBatch:
    batch = CheckpointBatch()
    batch.outputs = [Outbound("tier-changes", b"o:a", b"change")]
    batch.changes = [_change("a", 1, b"A"), _change("b", 2, b"B"), _change("c", 1, None)]
    return batch


def _checkpoint(log: list[Any], writer: Writer) -> Checkpoint:
    async def sleep(seconds: float) -> None:
        log.append(("sleep", seconds))

    return Checkpoint(
        writer,
        NAMES,
        CHANGELOG,
        lambda: Store(log),  # type: ignore[arg-type, return-value]
        Snapshots(log),
        crash=lambda step: log.append(("crash point", step)),
        sleep=sleep,
    )


async def test_outputs_then_changelog_then_store_with_its_offsets_then_redis() -> None:
    log: list[Any] = []
    writer = Writer(log)
    landed = await _checkpoint(log, writer).land(_batch(), still_owner=lambda: True)
    assert landed
    assert log == [
        ("written", [("engagement.tier-changes", b"o:a", b"change")]),
        ("crash point", "checkpoint-after-outputs"),
        (
            "written",
            [(CHANGELOG, b"o:a", b"A"), (CHANGELOG, b"o:b", b"B"), (CHANGELOG, b"o:c", None)],
        ),
        ("crash point", "checkpoint-after-changelog"),
        # One write per partition, holding the offset of that partition's last changelog record.
        ("store", 1, [(b"o:a", b"A"), (b"o:c", None)], 1),
        ("store", 2, [(b"o:b", b"B")], 0),
        ("crash point", "checkpoint-after-store"),
        ("redis", [("o", "a", 7), ("o", "b", 7), ("o", "c", 7)]),
        ("crash point", "checkpoint-after-redis"),
    ]


async def test_the_states_of_a_part_land_without_redis_which_comes_after_them() -> None:
    """The worker lands a part's states (`land_state`) and starts its Redis write
    (`land_redis`) on the side, so the next part's states need not wait for Redis: the state
    steps must not touch Redis, and Redis then gets exactly what `land` would have written."""
    log: list[Any] = []
    checkpoint = _checkpoint(log, Writer(log))
    batch = _batch()
    assert await checkpoint.land_state(batch, still_owner=lambda: True)
    assert [entry[0] for entry in log if entry[0] == "redis"] == []
    assert log[-1] == ("crash point", "checkpoint-after-store")
    await checkpoint.land_redis(batch)
    assert log[-2:] == [
        ("redis", [("o", "a", 7), ("o", "b", 7), ("o", "c", 7)]),
        ("crash point", "checkpoint-after-redis"),
    ]


async def test_a_worker_that_lost_a_partition_writes_no_state_after_its_outputs() -> None:
    log: list[Any] = []
    landed = await _checkpoint(log, Writer(log)).land(_batch(), still_owner=lambda: False)
    assert not landed
    assert [entry[0] for entry in log] == ["written", "crash point"]  # outputs only


async def test_a_broker_error_is_retried_with_backoff_on_a_fresh_producer() -> None:
    log: list[Any] = []
    writer = Writer(log)
    checkpoint = _checkpoint(log, writer)
    batch = _batch()
    await checkpoint.land(batch, still_owner=lambda: True)
    log.clear()

    writer.failures = 7  # the changelog write of the next checkpoint fails seven times
    batch.outputs = []
    assert await checkpoint.land(batch, still_owner=lambda: True)
    sleeps = [entry[1] for entry in log if entry[0] == "sleep"]
    assert sleeps == [1, 2, 4, 8, 16, MAX_RETRY_SECONDS, MAX_RETRY_SECONDS]
    assert log.count(("reset",)) == 7
    written = [entry for entry in log if entry[0] == "written"]
    assert len(written) == 1 and written[0][1][0][0] == CHANGELOG  # outputs were not resent
    assert any(entry[0] == "store" for entry in log)


async def test_retries_stop_once_the_partitions_are_gone() -> None:
    log: list[Any] = []
    owner = {"still": True}
    writer = Writer(log, failures=100)

    async def sleep(seconds: float) -> None:
        owner["still"] = False  # the group moved on while the broker was away

    checkpoint = _checkpoint(log, writer)
    checkpoint.sleep = sleep
    assert not await checkpoint.land(_batch(), still_owner=lambda: owner["still"])
    assert not any(entry[0] in ("store", "redis") for entry in log)


async def test_a_checkpoint_of_dead_letters_only_touches_neither_table_nor_redis() -> None:
    log: list[Any] = []
    batch = CheckpointBatch()
    batch.outputs = [Outbound("dead-letters", None, b"not json")]
    assert await _checkpoint(log, Writer(log)).land(batch, still_owner=lambda: True)
    assert [entry[0] for entry in log] == ["written", "crash point", "crash point"]


def _step_counts() -> dict[str, float]:
    from agents.metrics import REGISTRY

    return {
        step: REGISTRY.get_sample_value("em_checkpoint_step_seconds_count", {"step": step}) or 0.0
        for step in ("outputs", "changelog", "store", "redis")
    }


async def test_each_step_of_a_landing_is_timed_once() -> None:
    before = _step_counts()
    await _checkpoint([], Writer([])).land(_batch(), still_owner=lambda: True)
    after = _step_counts()
    assert {step: after[step] - before[step] for step in after} == {
        "outputs": 1,
        "changelog": 1,
        "store": 1,
        "redis": 1,
    }


async def test_a_checkpoint_without_outputs_or_changes_times_no_step() -> None:
    before = _step_counts()
    await _checkpoint([], Writer([])).land(CheckpointBatch(), still_owner=lambda: True)
    assert _step_counts() == before
