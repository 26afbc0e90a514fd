"""kill -9 at each step of the ingest and of a checkpoint, then restart: every contact exact.

`EM_CRASH_AT=<step>` makes the worker SIGKILL itself the first time it reaches that step. The
restarted worker (same data directory, no crash point) must bring every snapshot to the
reference, and the test checks that the path which makes that possible really ran: records
framed twice after an ingest crash, envelopes re-read after a checkpoint crash. A checker reads the
envelope topic and proves that every input record reached at least one envelope.
"""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.asyncio as aioredis

from counting import CountingConfig
from engagement_monitor.settings import CRASH_POINTS
from streams import envelope
from streams.envelope import KIND_RECORD
from streams.topics import ENVELOPE_TOPIC, INPUT_TOPICS
from tests.integration.harness import Pipeline, WorkerProcess
from tests.integration.streamgen import engagement_stream, reference
from tests.integration.test_pipeline_exactness import _assert_exact

pytestmark = pytest.mark.integration

Coordinate = tuple[str, int, int]


async def _died(worker: WorkerProcess, timeout: float = 90) -> int:
    assert worker.proc is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code = worker.proc.poll()
        if code is not None:
            return code
        await asyncio.sleep(0.2)
    raise AssertionError(f"worker never reached its crash point:\n{worker.tail()}")


async def _envelope_coordinates(pipeline: Pipeline) -> list[Coordinate]:
    seen: list[Coordinate] = []
    for record in await pipeline.read_to_end(ENVELOPE_TOPIC):
        for entry in envelope.decode(record.value):
            if entry.kind == KIND_RECORD:
                seen.append((entry.topic, entry.partition, entry.offset))
    return seen


async def _input_coordinates(pipeline: Pipeline) -> set[Coordinate]:
    found: set[Coordinate] = set()
    for short in INPUT_TOPICS:
        for record in await pipeline.read_to_end(short):
            found.add((record.topic, record.partition, record.offset))
    return found


def _records_in(metrics: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("em_records_in_total{") and 'topic="expiry-tick"' not in line
    )


@pytest.mark.parametrize("point", CRASH_POINTS)
async def test_kill9_at_a_step_then_restart_gives_exact_counts(
    pipeline: Pipeline, redis_client: aioredis.Redis, point: str
) -> None:
    pipeline.store = "rocksdb"
    pipeline.extra_env["EM_SESSION_TIMEOUT_SECONDS"] = "6"
    pipeline.extra_env["EM_ENVELOPE_PURGE_SECONDS"] = "0"  # the checker reads every envelope
    org = f"crash-{pipeline.unique}"
    records = engagement_stream(org, contacts=60, messages=4, seed=11)
    expected = reference(records, CountingConfig())

    pipeline.extra_env["EM_CRASH_AT"] = point
    first = await pipeline.start_worker("w1")
    await pipeline.produce(records)
    assert await _died(first) == -9
    assert f"EM_CRASH_AT={point}" in first.tail(20_000)

    del pipeline.extra_env["EM_CRASH_AT"]
    second = await pipeline.start_worker("w1")  # same data directory, like a restarted pod
    await _assert_exact(redis_client, expected)

    inputs = await _input_coordinates(pipeline)
    assert len(inputs) == len(records)
    seen = await _envelope_coordinates(pipeline)
    assert inputs <= set(seen), "an input record never reached an envelope"
    if point == "ingest-after-send":
        # Its envelopes were acknowledged, its input offsets not committed: framed again
        # (the counts may be exact from the first framing before the second is written).
        deadline = time.monotonic() + 30
        while len(seen) == len(set(seen)):
            assert time.monotonic() < deadline, "the restarted ingest framed nothing again"
            await asyncio.sleep(0.5)
            seen = await _envelope_coordinates(pipeline)
    if point.startswith("checkpoint-"):
        # The first checkpoint never acked its envelopes: the restarted agent read every envelope
        # again, including those whose outputs (and states) the first worker had written.
        async def replayed_all() -> bool:
            return _records_in(await second.metrics()) >= len(seen)

        deadline = time.monotonic() + 30
        while not await replayed_all():
            assert time.monotonic() < deadline, "the restarted worker did not re-read everything"
            await asyncio.sleep(0.5)
