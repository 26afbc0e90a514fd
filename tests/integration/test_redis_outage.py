"""A Redis outage costs nothing but fresh snapshots: the same worker and API processes ride it out.

Each test runs its own Redis server, stops it, and starts it again empty (it keeps no data),
as an operator restarting the cache would.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis.asyncio as aioredis

from counting import CountingConfig
from read_api.app import create_app
from read_api.commands import MemoryPublisher
from tests.integration.harness import Pipeline, WorkerProcess, snapshot, wait_for
from tests.integration.redis_server import RedisServer
from tests.integration.streamgen import engagement_stream, reference
from tests.integration.test_crash_points import _records_in
from tests.integration.test_pipeline_exactness import _assert_exact
from tests.read_api.support import make_settings, make_tokens

pytestmark = pytest.mark.integration

OUTAGE_SECONDS = 30


@pytest.fixture
async def own_redis(tmp_path: Path) -> AsyncIterator[RedisServer]:
    server = RedisServer(tmp_path / "redis")
    try:
        yield server
    finally:
        server.stop()


async def _health(worker: WorkerProcess) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=5) as client:
        response = await client.get(f"http://127.0.0.1:{worker.port}/healthz")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = orjson.loads(response.content)
    return body


def _metric(metrics: str, name: str) -> float:
    for line in metrics.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split(" ", 1)[1])
    raise AssertionError(f"no {name} in /metrics")


async def test_redis_stopped_then_restarted_empty_under_traffic(
    pipeline: Pipeline, own_redis: RedisServer, tmp_path: Path
) -> None:
    own_redis.start()
    pipeline.redis_url = own_redis.url
    org = f"outage-{pipeline.unique}"
    records = engagement_stream(org, contacts=150, messages=5, seed=21)
    expected = reference(records, CountingConfig())
    half = len(records) // 2

    settings = make_settings(tmp_path, redis_url=own_redis.url, redis_timeout_seconds=1.0)
    tokens = make_tokens(settings, org)
    api = create_app(settings, producer=MemoryPublisher())
    path = f"/v1/orgs/{org}/contacts/c0000/monitor"
    client = aioredis.Redis.from_url(own_redis.url)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=api), base_url="http://api"
    ) as http:
        worker = await pipeline.start_worker()
        await pipeline.produce(records[:half])
        await wait_for(lambda: snapshot(client, org, "c0000"), what="a first snapshot")
        assert (await http.get(path, headers=tokens.header("agent"))).status_code == 200

        own_redis.stop()
        stopped = time.monotonic()
        await pipeline.produce(records[half:])

        # The worker keeps counting: every record is applied while Redis is gone.
        async def all_counted() -> bool:
            return _records_in(await worker.metrics()) >= len(records)

        await wait_for(all_counted, timeout=OUTAGE_SECONDS, what="every record counted")
        health = await _health(worker)
        assert health["status"] == "degraded" and health["redis"] == "down"
        assert "redis unavailable since" in health["detail"]
        metrics = await worker.metrics()
        assert _metric(metrics, "em_redis_up") == 0
        assert _metric(metrics, "em_redis_writes_held_total") > 0

        # The API answers 503 with a reason, never 500.
        response = await http.get(path, headers=tokens.header("agent"))
        assert response.status_code == 503
        assert "Redis" in response.json()["detail"]

        await asyncio.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - stopped)))
        assert worker.proc is not None and worker.proc.poll() is None, worker.tail()
        own_redis.start()  # empty
        await client.aclose()  # its pooled connection died with the server
        client = aioredis.Redis.from_url(own_redis.url)

        await _assert_exact(client, expected, timeout=90)
        assert (await _health(worker))["status"] == "ok"
        metrics = await worker.metrics()
        assert _metric(metrics, "em_redis_up") == 1
        assert _metric(metrics, "em_redis_outages_total") >= 1
        response = await http.get(path, headers=tokens.header("agent"))  # same API process
        assert response.status_code == 200
        assert orjson.loads(response.content)["contact_id"] == "c0000"
    await client.aclose()


async def test_redis_unreachable_at_start_up(pipeline: Pipeline, own_redis: RedisServer) -> None:
    pipeline.redis_url = own_redis.url  # not started yet
    org = f"late-{pipeline.unique}"
    records = engagement_stream(org, contacts=80, messages=4, seed=22)
    expected = reference(records, CountingConfig())

    worker = await pipeline.start_worker()  # healthy enough to count: degraded, not dead
    await pipeline.produce(records)

    async def all_counted() -> bool:
        return _records_in(await worker.metrics()) >= len(records)

    await wait_for(all_counted, timeout=60, what="every record counted without Redis")
    assert (await _health(worker))["status"] == "degraded"

    own_redis.start()
    client = aioredis.Redis.from_url(own_redis.url)
    await _assert_exact(client, expected, timeout=90)
    assert (await _health(worker))["status"] == "ok"
    await client.aclose()
