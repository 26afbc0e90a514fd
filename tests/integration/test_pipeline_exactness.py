"""Counts stay exact through a worker killed mid-stream, and through two rebalances.

Kafka redelivers what was not committed; the stream itself carries duplicates, disorder and
records with foreign keys. Every snapshot must still equal the reference computed from the
distinct events in event-time order.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.asyncio as aioredis

from counting import CountingConfig
from tests.integration.harness import Pipeline, figures, snapshot, wait_for
from tests.integration.streamgen import engagement_stream, reference

pytestmark = pytest.mark.integration


async def _paced(pipeline: Pipeline, records: list[Any], seconds: float) -> None:
    """Produce the records spread over `seconds`, in chunks, so a test can act mid-stream."""
    chunks = 20
    size = -(-len(records) // chunks)
    for i in range(chunks):
        await pipeline.produce(records[i * size : (i + 1) * size])
        await asyncio.sleep(seconds / chunks)


async def _assert_exact(
    client: aioredis.Redis, expected: dict[tuple[str, str], Any], timeout: float = 120
) -> None:
    async def mismatches() -> list[tuple[str, str]]:
        wrong = []
        for (org, contact), snap in expected.items():
            if figures(await snapshot(client, org, contact)) != figures(snap):
                wrong.append((org, contact))
        return wrong

    async def done() -> bool:
        return not await mismatches()

    try:
        await wait_for(done, timeout=timeout, interval=1.0, what="snapshots equal to reference")
    except AssertionError:
        wrong = await mismatches()
        org, contact = wrong[0]
        got = figures(await snapshot(client, org, contact))
        raise AssertionError(
            f"{len(wrong)} of {len(expected)} snapshots differ; first {contact}:\n"
            f"got      {got}\nexpected {figures(expected[(org, contact)])}"
        ) from None


async def test_worker_killed_mid_stream_recovers_exact_counts(
    pipeline: Pipeline, redis_client: aioredis.Redis
) -> None:
    pipeline.store = "rocksdb"
    # The restarted worker's group waits for the killed member's session to expire: 6 s (the
    # broker's minimum) instead of the default 60, as in the crash-point tests.
    pipeline.extra_env["EM_SESSION_TIMEOUT_SECONDS"] = "6"
    org = f"org-{pipeline.unique}"
    records = engagement_stream(org, contacts=120, messages=6, seed=1)
    expected = reference(records, CountingConfig())

    worker = await pipeline.start_worker("w1")
    producing = asyncio.create_task(_paced(pipeline, records, seconds=6))
    await asyncio.sleep(3)
    worker.kill9()  # mid-stream: batches in flight, offsets not committed, changelog partial
    await pipeline.start_worker("w1")  # same data directory, like a restarted pod
    await producing
    await _assert_exact(redis_client, expected)


async def _join_and_leave(
    pipeline: Pipeline, redis_client: aioredis.Redis, *, rekeyed: bool
) -> None:
    pipeline.store = "rocksdb"  # the production store; each worker has its own data directory
    org = f"org-{pipeline.unique}"
    records = engagement_stream(org, contacts=120, messages=6, seed=2, rekeyed=rekeyed)
    expected = reference(records, CountingConfig())

    await pipeline.start_worker("w1")
    producing = asyncio.create_task(_paced(pipeline, records, seconds=12))
    await asyncio.sleep(2)
    second = await pipeline.start_worker("w2")  # rebalance 1: partitions split
    await asyncio.sleep(3)
    second.stop()  # rebalance 2: w1 takes everything back, recovering w2's changelog writes
    await producing
    await _assert_exact(redis_client, expected)


async def test_second_worker_joins_and_leaves_mid_stream(
    pipeline: Pipeline, redis_client: aioredis.Redis
) -> None:
    """Every record keyed by its contact: two rebalances, every figure exact."""
    await _join_and_leave(pipeline, redis_client, rekeyed=False)


async def test_join_and_leave_with_rekeyed_records(
    pipeline: Pipeline, redis_client: aioredis.Redis
) -> None:
    """The same with ~8 % of records keyless or foreign-keyed (re-keyed by the worker)."""
    await _join_and_leave(pipeline, redis_client, rekeyed=True)


async def test_second_worker_joins_mid_stream(
    pipeline: Pipeline, redis_client: aioredis.Redis
) -> None:
    """One rebalance (a worker joins and stays): every figure exact."""
    pipeline.store = "rocksdb"
    org = f"org-{pipeline.unique}"
    records = engagement_stream(org, contacts=120, messages=6, seed=3)
    expected = reference(records, CountingConfig())
    await pipeline.start_worker("w1")
    producing = asyncio.create_task(_paced(pipeline, records, seconds=8))
    await asyncio.sleep(2)
    await pipeline.start_worker("w2")
    await producing
    await _assert_exact(redis_client, expected)
