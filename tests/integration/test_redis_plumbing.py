"""The Redis started by the project answers, pipelines and expires keys."""

from __future__ import annotations

import asyncio

import orjson
import pytest
import redis.asyncio as aioredis

pytestmark = pytest.mark.integration


async def test_pipelined_round_trip(redis_client: aioredis.Redis, unique: str) -> None:
    async with redis_client.pipeline(transaction=False) as pipe:
        for i in range(100):
            pipe.set(f"t:{unique}:{i}", orjson.dumps({"n": i}))
        pipe.zadd(f"t:{unique}:z", {f"c{i}": i for i in range(100)})
        await pipe.execute()
    values = await redis_client.mget([f"t:{unique}:{i}" for i in range(100)])
    assert [orjson.loads(v)["n"] for v in values] == list(range(100))
    assert await redis_client.zrangebyscore(f"t:{unique}:z", 10, 12) == [b"c10", b"c11", b"c12"]
    await redis_client.set(f"t:{unique}:ttl", b"x", px=200)
    await asyncio.sleep(0.4)
    assert await redis_client.get(f"t:{unique}:ttl") is None
    await redis_client.delete(*[f"t:{unique}:{i}" for i in range(100)], f"t:{unique}:z")


async def test_a_bounded_pool_queues_a_burst_instead_of_failing(
    redis_url: str, unique: str
) -> None:
    """The API's client has at most 64 connections; a burst of more concurrent reads than that
    waits for a free connection (at 5,000 rps, bursts over the bound were answered 503)."""
    from engagement_monitor.redis_client import connect

    client = connect(redis_url, 5.0, max_connections=2)
    try:
        await client.set(f"burst:{unique}", b"v")
        values = await asyncio.gather(*(client.get(f"burst:{unique}") for _ in range(50)))
        assert values == [b"v"] * 50
        await client.delete(f"burst:{unique}")
    finally:
        await client.aclose()
