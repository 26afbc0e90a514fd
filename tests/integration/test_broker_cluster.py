"""On a three-broker cluster, a broker killed mid-stream (SIGKILL) and brought back loses nothing.

Runs with `make test-cluster` (not in `make test`: three more JVMs on a 2-core machine take a
few minutes). The cluster is the test's own (`tests.integration.kafka_server.KafkaCluster`):
KRaft, every node broker and controller, replication factor 3, `min.insync.replicas=2`, and
the worker creates its topics with `EM_REPLICATION_FACTOR=3`. Every contact must end exact,
every malformed record must be in `dead-letters`, and the last tier change published for every
contact and scope must be the tier its snapshot shows (none lost from an output topic).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis
from aiokafka.admin import AIOKafkaAdminClient

from counting import CountingConfig
from tests.integration.harness import Pipeline, snapshot
from tests.integration.kafka_server import KafkaCluster
from tests.integration.streamgen import engagement_stream, reference
from tests.integration.test_pipeline_exactness import _assert_exact, _paced
from tests.integration.test_pipeline_operations import _malformed

pytestmark = [pytest.mark.integration, pytest.mark.cluster]


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[KafkaCluster]:
    brokers = KafkaCluster(tmp_path / "cluster")
    await asyncio.to_thread(brokers.start)
    try:
        yield brokers
    finally:
        await asyncio.to_thread(brokers.stop)


async def _layout(bootstrap: str, prefix: str) -> dict[tuple[str, int], tuple[int, list[int]]]:
    """(topic, partition) -> (leader, replicas) of every topic under `prefix`."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if t.startswith(prefix)]
        return {
            (topic["topic"], part["partition"]): (part["leader"], list(part["replicas"]))
            for topic in await admin.describe_topics(names)
            for part in topic["partitions"]
        }
    finally:
        await admin.close()


async def test_a_broker_killed_mid_stream_and_brought_back_loses_nothing(
    pipeline: Pipeline, cluster: KafkaCluster, redis_client: aioredis.Redis
) -> None:
    pipeline.bootstrap = cluster.bootstrap
    pipeline.store = "rocksdb"
    pipeline.partitions = 6
    pipeline.extra_env["EM_REPLICATION_FACTOR"] = "3"
    org = f"cluster-{pipeline.unique}"
    good = engagement_stream(org, contacts=150, messages=6, seed=51)
    bad = [_malformed(org, i) for i in range(60) if i % 9 != 6]  # oversize would slow it
    mixed: list[tuple[str, bytes | None, Any]] = list(good)
    rng = random.Random(52)
    for topic, raw, _code in bad:
        mixed.insert(rng.randrange(len(mixed) + 1), (topic, b"bad-key", raw))
    expected = reference(good, CountingConfig())

    await pipeline.start_worker()
    # Every topic the worker made is replicated three times, and the victim leads some of them.
    layout = await _layout(cluster.bootstrap, pipeline.prefix)
    assert layout and all(len(replicas) == 3 for _leader, replicas in layout.values()), layout
    victim = cluster.nodes[1]
    assert any(leader == victim.node_id for leader, _r in layout.values()), layout

    producing = asyncio.create_task(_paced(pipeline, mixed, seconds=24))
    await asyncio.sleep(8)
    await asyncio.to_thread(victim.stop, kill=True)  # partition leaders move to the others
    await asyncio.sleep(10)
    await asyncio.to_thread(victim.start)  # catches up as a follower, then leads again
    await producing
    await _assert_exact(redis_client, expected, timeout=240)

    letters = await pipeline.consume_all("dead-letters", expect=len(bad), timeout=60)
    assert sorted(r.value for r in letters) == sorted(raw for _t, raw, _c in bad)

    # The last tier change of every contact and scope is the tier its snapshot shows.
    last: dict[tuple[str, str | None], str | None] = {}
    for record in await pipeline.consume_all("tier-changes", timeout=60):
        change = orjson.loads(record.value)
        last[(change["contact_id"], change["channel"])] = change["tier"]
    assert last, "no tier change at all"
    for (contact, scope), tier in last.items():
        snap = await snapshot(redis_client, org, contact)
        assert snap is not None
        shown = snap["engagement"] if scope is None else snap["channels"][scope]["engagement"]
        assert shown["tier"] == tier, (contact, scope)
