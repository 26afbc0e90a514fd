"""Fixtures for tests that run against the real Kafka broker and Redis.

The services are started by `scripts/services.sh up` (via `make test`); these fixtures only find
them, and fail loudly (never skip) when they are missing, so a green run always means the real
parts were exercised.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from aiokafka.admin import AIOKafkaAdminClient

from tests.integration.harness import Pipeline

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    return os.environ.get("EM_KAFKA_BOOTSTRAP") or "127.0.0.1:9092"


@pytest.fixture(scope="session")
def redis_url() -> str:
    return os.environ.get("EM_REDIS_URL") or "redis://127.0.0.1:6379/0"


@pytest.fixture(scope="session")
async def kafka_admin(kafka_bootstrap: str) -> AsyncIterator[AIOKafkaAdminClient]:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap, request_timeout_ms=10000)
    try:
        await asyncio.wait_for(admin.start(), 15)
    except Exception as exc:  # pragma: no cover - environment problem, reported plainly
        pytest.fail(f"no Kafka at {kafka_bootstrap} ({exc!r}); start it with `make services`")
    yield admin
    await admin.close()


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    try:
        await client.ping()
    except Exception as exc:  # pragma: no cover
        pytest.fail(f"no Redis at {redis_url} ({exc!r}); start it with `make services`")
    yield client
    await client.aclose()


@pytest.fixture
def unique() -> str:
    """A short name unique to this test, so tests never see each other's topics or keys."""
    return uuid.uuid4().hex[:10]


@pytest.fixture
async def pipeline(
    kafka_bootstrap: str, redis_url: str, unique: str, tmp_path: Path
) -> AsyncIterator[Pipeline]:
    """An isolated pipeline (own topics, group, changelog); its workers are stopped after."""
    p = Pipeline(kafka_bootstrap, redis_url, unique, tmp_path)
    try:
        yield p
    finally:
        p.stop_all()
