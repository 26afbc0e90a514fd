"""With Redis gone, every read answers 503 with a clear message (never 500), writes still go."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from read_api.app import create_app
from read_api.commands import MemoryPublisher
from tests.integration.harness import free_port
from tests.read_api.support import Tokens, make_settings, make_tokens

ORG = "acme"


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Tokens]]:
    # A port nobody listens on: connection refused, as when Redis is stopped.
    settings = make_settings(
        tmp_path, redis_url=f"redis://127.0.0.1:{free_port()}/0", redis_timeout_seconds=1.0
    )
    tokens = make_tokens(settings, ORG)
    app = create_app(settings, producer=MemoryPublisher())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        yield client, tokens


@pytest.mark.parametrize(
    "path",
    [
        f"/v1/orgs/{ORG}/contacts/c1/monitor",
        f"/v1/orgs/{ORG}/segments?tier=high",
        f"/v1/orgs/{ORG}/segments?tier=low&channel=email",
    ],
)
async def test_reads_answer_503_saying_redis_is_unavailable(
    api: tuple[httpx.AsyncClient, Tokens], path: str
) -> None:
    client, tokens = api
    response = await client.get(path, headers=tokens.header("agent"))
    assert response.status_code == 503, response.text
    assert "Redis" in response.json()["detail"]
    assert response.headers["Retry-After"] == "2"


async def test_health_says_redis_is_unreachable(api: tuple[httpx.AsyncClient, Tokens]) -> None:
    client, _ = api
    response = await client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["redis"] == "unreachable"


async def test_auth_is_still_checked_first(api: tuple[httpx.AsyncClient, Tokens]) -> None:
    client, _ = api
    response = await client.get(f"/v1/orgs/{ORG}/contacts/c1/monitor")
    assert response.status_code == 401
