"""The local Redis Cluster helper: three masters on loopback, one restarted with its data kept.

Keys of 200 different hash tags spread over the three masters; master 1 is shut down (its AOF
fsynced) and started again in the same directory; every key reads back through the cluster client,
which reconnects by itself, and a Lua script over two keys of one {tag} runs on the restarted node.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis
from redis.asyncio.cluster import RedisCluster

from tests.integration.redis_cluster import LocalRedisCluster

pytestmark = pytest.mark.integration

KEYS = 200


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[LocalRedisCluster]:
    local = LocalRedisCluster.on_free_ports(tmp_path / "redis-cluster")
    try:
        await asyncio.to_thread(local.start)
        yield local
    finally:
        await asyncio.to_thread(local.stop)


def port_of(client: RedisCluster, key: str) -> int:
    node = client.get_node_from_key(key)
    assert node is not None, key
    return int(node.port)


def dbsize(port: int) -> int:
    client = redis.Redis(host="127.0.0.1", port=port)
    try:
        return client.dbsize()
    finally:
        client.close()


async def test_keys_survive_a_master_restart(cluster: LocalRedisCluster) -> None:
    assert cluster.url == f"redis://127.0.0.1:{cluster.ports[0]}/0"
    client = RedisCluster.from_url(cluster.url)
    try:
        keys = [f"{{t{i}}}:value" for i in range(KEYS)]
        for i, key in enumerate(keys):
            assert await client.set(key, f"v{i}")
        per_node = [dbsize(p) for p in cluster.ports]
        assert sum(per_node) == KEYS
        assert all(n > 0 for n in per_node), per_node  # every master holds some of them

        restarted_port = cluster.ports[1]
        on_restarted = [k for k in keys if port_of(client, k) == restarted_port]
        assert len(on_restarted) == per_node[1]

        began = time.monotonic()
        await asyncio.to_thread(cluster.restart, 1)
        print(f"master 1 restarted and the cluster ok again in {time.monotonic() - began:.2f} s")

        assert dbsize(restarted_port) == per_node[1]  # the AOF brought them back
        for i, key in enumerate(keys):
            assert await client.get(key) == f"v{i}".encode(), key

        # Two keys of one {tag} (a tag whose slot lives on the restarted master) in one script.
        tag = next(k.split("}")[0] + "}" for k in on_restarted)
        script = (
            "redis.call('SET', KEYS[1], ARGV[1]) "
            "redis.call('INCRBY', KEYS[2], 2) "
            "return {redis.call('GET', KEYS[1]), redis.call('GET', KEYS[2])}"
        )
        result = await client.eval(script, 2, f"{tag}:a", f"{tag}:b", "lua")
        assert result == [b"lua", b"2"]
        assert port_of(client, f"{tag}:a") == restarted_port
        assert await client.get(f"{tag}:b") == b"2"
    finally:
        await client.aclose()
