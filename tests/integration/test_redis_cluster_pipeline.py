"""Issue 14: the pipeline and the API on a three-master Redis Cluster (EM_REDIS_CLUSTER), with
one master restarted mid-stream. Orgs spread over the masters (each org's keys share one hash
tag, so one slot); every contact must still end equal to the reference, the overview's
counters must equal what the snapshots show, and the API must serve all of it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from counting import CountingConfig
from engagement_monitor import keyspace as ks
from tests.integration.harness import Pipeline, figures, free_port, snapshot, wait_for
from tests.integration.redis_cluster import LocalRedisCluster, free_ports
from tests.integration.streamgen import engagement_stream, reference
from tests.read_api.support import make_settings, make_tokens

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRedisCluster]:
    made = LocalRedisCluster(tmp_path_factory.mktemp("redis-cluster"), free_ports(3))
    made.start()
    try:
        yield made
    finally:
        made.stop()


@pytest.fixture
async def cluster_client(cluster: LocalRedisCluster) -> AsyncIterator[aioredis.Redis]:
    client = cast(aioredis.Redis, RedisCluster.from_url(cluster.url))
    try:
        yield client
    finally:
        await client.aclose()


def _start_api(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "engagement_monitor.cli", "api"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def _paced(pipeline: Pipeline, records: list[Any], chunks: int) -> None:
    size = -(-len(records) // chunks)
    for i in range(chunks):
        await pipeline.produce(records[i * size : (i + 1) * size])
        await asyncio.sleep(0.3)


async def test_pipeline_and_api_on_a_redis_cluster_through_a_master_restart(
    pipeline: Pipeline, cluster: LocalRedisCluster, cluster_client: aioredis.Redis, tmp_path: Path
) -> None:
    pipeline.store = "rocksdb"
    pipeline.redis_url = cluster.url
    pipeline.extra_env["EM_REDIS_CLUSTER"] = "true"
    orgs = [f"org{i}-{pipeline.unique}" for i in range(6)]
    records: list[Any] = []
    for i, org in enumerate(orgs):
        records += engagement_stream(org, contacts=30, messages=5, seed=10 + i)
    expected = reference(records, CountingConfig())
    slots = {
        RedisCluster.keyslot(cast(RedisCluster, cluster_client), ks.redis_org_prefix(o))
        for o in orgs
    }
    assert len(slots) == len(orgs)  # one slot per org, spread over the masters

    await pipeline.start_worker("w1")
    half = len(records) // 2
    await _paced(pipeline, records[:half], chunks=5)
    cluster.restart(1)  # a master goes away and comes back (its AOF keeps its keys)
    await _paced(pipeline, records[half:], chunks=5)

    async def mismatches() -> list[tuple[str, str]]:
        wrong = []
        for (org, contact), snap in expected.items():
            if figures(await snapshot(cluster_client, org, contact)) != figures(snap):
                wrong.append((org, contact))
        return wrong

    async def exact() -> bool:
        return not await mismatches()

    try:
        await wait_for(exact, timeout=120, interval=1.0, what="snapshots equal to the reference")
    except AssertionError:
        wrong = await mismatches()
        raise AssertionError(f"{len(wrong)} of {len(expected)} differ: {wrong[:3]}") from None

    # the API on the cluster, as its own process (`engagement-monitor api`, EM_REDIS_CLUSTER)
    settings = make_settings(tmp_path, redis_url=cluster.url, redis_cluster=True)
    tokens = {org: make_tokens(settings, org) for org in orgs}
    port = free_port()
    env = {
        **os.environ,
        "EM_REDIS_URL": cluster.url,
        "EM_REDIS_CLUSTER": "true",
        "EM_KAFKA_BOOTSTRAP": pipeline.bootstrap,
        "EM_TOPIC_PREFIX": pipeline.prefix,
        "EM_API_PORT": str(port),
        "EM_API_TOKENS_FILE": str(settings.api_tokens_file),
    }
    server = _start_api(env, tmp_path / "api.log")
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as api:

            async def up() -> bool:
                try:
                    return (await api.get("/healthz")).status_code == 200
                except httpx.HTTPError:
                    return False

            await wait_for(up, timeout=60, what="the API on the cluster")
            for org in orgs:
                headers = tokens[org].header("agent")
                mine = {c: s for (o, c), s in expected.items() if o == org and s is not None}
                overview = (await api.get(f"/v1/orgs/{org}/overview", headers=headers)).json()
                assert overview["contacts"] == len(mine), org
                tiers = [s["engagement"]["tier"] for s in mine.values()]
                for tier, count in overview["tiers"]["overall"].items():
                    assert count == tiers.count(None if tier == "none" else tier), (org, tier)
                contact, snap = next(iter(mine.items()))
                shown = await api.get(f"/v1/orgs/{org}/contacts/{contact}/monitor", headers=headers)
                assert shown.status_code == 200 and figures(shown.json()) == figures(snap)
                tier = snap["engagement"]["tier"] or "low"
                page = await api.get(
                    f"/v1/orgs/{org}/segments", params={"tier": tier}, headers=headers
                )
                assert {i["contact_id"] for i in page.json()["items"]} <= set(mine)
                changes = await api.get(f"/v1/orgs/{org}/tier-changes", headers=headers)
                assert changes.status_code == 200
    finally:
        server.terminate()
        server.wait(timeout=30)
