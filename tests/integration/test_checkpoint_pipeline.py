"""What checkpoints promise, on the real broker and Redis: exact through three workers joining
and leaving (one killed -9), a wiped local store rebuilt from the changelog with the same
figures, a store ahead of its changelog (the topic deleted and created again) rebuilt from it
instead of stopping the worker, and committed envelopes purged.
"""

from __future__ import annotations

import asyncio
import re
import shutil

import httpx
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from counting import CountingConfig
from engagement_monitor import keyspace as ks
from streams.topics import ENVELOPE_TOPIC
from tests.integration.harness import Pipeline, WorkerProcess, wait_for
from tests.integration.streamgen import engagement_stream, reference
from tests.integration.test_pipeline_exactness import _assert_exact, _paced

pytestmark = pytest.mark.integration


async def test_three_workers_joining_and_leaving_one_killed_keep_every_contact_exact(
    pipeline: Pipeline, redis_client: aioredis.Redis
) -> None:
    pipeline.store = "rocksdb"
    pipeline.partitions = 6
    # A killed worker's partitions move once its session times out: keep that short.
    pipeline.extra_env["EM_SESSION_TIMEOUT_SECONDS"] = "6"
    org = f"churn-{pipeline.unique}"
    records = engagement_stream(org, contacts=150, messages=6, seed=21)
    expected = reference(records, CountingConfig())

    await pipeline.start_worker("w1")
    producing = asyncio.create_task(_paced(pipeline, records, seconds=20))
    await asyncio.sleep(2)
    second = await pipeline.start_worker("w2")  # joins: 2 workers
    await asyncio.sleep(2)
    third = await pipeline.start_worker("w3")  # joins: 3 workers
    await asyncio.sleep(3)
    second.kill9()  # dies mid-checkpoint, say: its partitions move after the session timeout
    await asyncio.sleep(3)
    third.stop()  # leaves gracefully: lands what it holds, then its partitions move
    await asyncio.sleep(2)
    await pipeline.start_worker("w2")  # comes back on its old data directory
    await producing
    await _assert_exact(redis_client, expected, timeout=180)


async def test_contacts_cached_before_a_rebalance_are_not_reused_stale_after_it(
    pipeline: Pipeline, redis_client: aioredis.Redis
) -> None:
    """Quiet rebalances between phases of one stream: each worker lands everything, so its
    cache holds clean contacts when partitions move; when they come back after another worker
    counted on them, a cached contact that was not forgotten would take the new events on a
    stale state."""
    pipeline.store = "rocksdb"
    pipeline.partitions = 6
    pipeline.extra_env["EM_SESSION_TIMEOUT_SECONDS"] = "6"
    org = f"phases-{pipeline.unique}"
    records = engagement_stream(org, contacts=60, messages=8, seed=24, rekeyed=False)
    cut = [len(records) * i // 4 for i in range(5)]
    phases = [records[cut[i] : cut[i + 1]] for i in range(4)]

    async def phase(i: int) -> None:
        await pipeline.produce(phases[i])
        await _assert_exact(redis_client, reference(records[: cut[i + 1]], CountingConfig()))

    await pipeline.start_worker("w1")
    await phase(0)  # w1 owns every partition and caches every contact
    second = await pipeline.start_worker("w2")
    await phase(1)  # some partitions counted by w2
    third = await pipeline.start_worker("w3")
    await phase(2)  # ... and by w3
    second.kill9()
    third.stop()
    await wait_for(
        lambda: _owns_all(pipeline.workers[0], pipeline.partitions),
        timeout=60,
        what="w1 owning every partition again",
    )
    await phase(3)  # w1 again, on contacts the others changed meanwhile


async def _owns_all(worker: WorkerProcess, partitions: int) -> bool:
    async with httpx.AsyncClient(timeout=2) as client:
        try:
            body = (await client.get(f"http://127.0.0.1:{worker.port}/healthz")).json()
        except (httpx.HTTPError, ValueError):
            return False
    return bool(body.get("detail") == f"partitions {list(range(partitions))}")


async def _drop_redis_copy(client: aioredis.Redis, pipeline: Pipeline, org: str) -> None:
    """Delete the org's snapshots and the partitions' sentinels: the worker must rebuild every
    snapshot from its table, so what Redis shows afterwards is what the table holds."""
    keys = [key async for key in client.scan_iter(match=ks.redis_org_pattern(org))]
    keys += [ks.redis_sentinel_key(pipeline.app_id, p) for p in range(pipeline.partitions)]
    await client.delete(*keys)


async def test_a_wiped_store_is_rebuilt_from_the_changelog_with_the_same_figures(
    pipeline: Pipeline, redis_client: aioredis.Redis
) -> None:
    pipeline.store = "rocksdb"
    org = f"wipe-{pipeline.unique}"
    records = engagement_stream(org, contacts=80, messages=6, seed=22)
    first, later = records[: len(records) * 2 // 3], records[len(records) * 2 // 3 :]

    worker = await pipeline.start_worker("w1")
    await pipeline.produce(first)
    await _assert_exact(redis_client, reference(first, CountingConfig()))
    worker.stop()

    shutil.rmtree(pipeline.tmp / "w1")  # the local RocksDB store is gone
    await _drop_redis_copy(redis_client, pipeline, org)
    restarted = await pipeline.start_worker("w1")  # recovers the table from the changelog alone
    await _assert_exact(redis_client, reference(first, CountingConfig()))
    # through the bulk loader (streams/changelog_preload.py), not Faust's per-record replay
    loaded = [int(n) for n in re.findall(r"loaded (\d+) changelog records", restarted.tail(10**6))]
    assert loaded and sum(loaded) > 0, restarted.tail()

    await pipeline.produce(later)  # and counts on from the recovered states
    await _assert_exact(redis_client, reference(records, CountingConfig()))


async def test_a_store_ahead_of_its_changelog_is_rebuilt_from_it_instead_of_stopping(
    pipeline: Pipeline, redis_client: aioredis.Redis, kafka_admin: AIOKafkaAdminClient
) -> None:
    """Faust stops with a ConsistencyError when a store's persisted offset lies beyond the
    changelog's end (the topic deleted under a worker that keeps its disk, as a reset of a
    development Kafka does). The changelog is the truth, as in Kafka Streams: the worker
    discards the store, rebuilds it from the changelog and serves on."""
    pipeline.store = "rocksdb"
    org = f"ahead-{pipeline.unique}"
    records = engagement_stream(org, contacts=40, messages=5, seed=31)
    first, later = records[: len(records) // 2], records[len(records) // 2 :]

    worker = await pipeline.start_worker("w1")
    await pipeline.produce(first)
    await _assert_exact(redis_client, reference(first, CountingConfig()))
    worker.stop()

    changelog = f"{pipeline.app_id}-contacts-changelog"
    await kafka_admin.delete_topics([changelog])
    await wait_for(lambda: _topic_gone(kafka_admin, changelog), timeout=30)
    await _drop_redis_copy(redis_client, pipeline, org)

    restarted = await pipeline.start_worker("w1")  # would die with a ConsistencyError
    assert "was ahead of its changelog" in restarted.tail(10**6), restarted.tail()
    # The counted states went with their changelog: only what follows is counted.
    await pipeline.produce(later)
    await _assert_exact(redis_client, reference(later, CountingConfig()))
    assert await restarted.health() == 200


async def _topic_gone(admin: AIOKafkaAdminClient, topic: str) -> bool:
    return topic not in await admin.list_topics()


async def _envelope_starts(pipeline: Pipeline) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=pipeline.bootstrap)
    await consumer.start()
    try:
        topic = pipeline.topic(ENVELOPE_TOPIC)
        tps = [TopicPartition(topic, p) for p in range(pipeline.partitions)]
        starts: dict[TopicPartition, int] = await consumer.beginning_offsets(tps)
        return starts
    finally:
        await consumer.stop()


async def test_committed_envelopes_are_purged(
    pipeline: Pipeline, redis_client: aioredis.Redis
) -> None:
    pipeline.extra_env["EM_ENVELOPE_PURGE_SECONDS"] = "1"
    org = f"purge-{pipeline.unique}"
    records = engagement_stream(org, contacts=60, messages=4, seed=23)
    worker = await pipeline.start_worker("w1")
    await pipeline.produce(records)
    await _assert_exact(redis_client, reference(records, CountingConfig()))

    async def purged() -> bool:
        starts = await _envelope_starts(pipeline)
        return sum(starts.values()) > 0

    await wait_for(purged, timeout=30, what="envelopes deleted from the envelope topic")
    metrics = await worker.metrics()
    deleted = sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("em_envelopes_purged_total ")
    )
    assert deleted > 0
    # A restart reads from the committed offsets, past what was deleted: still exact.
    worker.stop()
    await pipeline.start_worker("w1")
    await _assert_exact(redis_client, reference(records, CountingConfig()))
