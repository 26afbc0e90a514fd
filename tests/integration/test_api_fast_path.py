"""The monitor GET's fast path (`read_api.monitor_fast_path`) answers exactly what the FastAPI
route answers, for ordinary requests and for every odd or refused one, on the real Redis: the
same status, headers and body from an app with it and an app without it. Ordinary requests
are served by it (its counter moves, and the route's metrics count them as before); anything
else reaches the app.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI

from read_api.app import create_app
from read_api.commands import MemoryPublisher
from read_api.monitor_fast_path import MonitorFastPath
from tests.read_api.support import Tokens, clear_org, make_settings, make_tokens, seed_contact

pytestmark = pytest.mark.integration


@dataclass
class Apps:
    fast: httpx.AsyncClient
    plain: httpx.AsyncClient
    fast_app: FastAPI
    org: str
    other: str
    tokens: Tokens
    other_tokens: Tokens


@pytest.fixture
async def apps(
    tmp_path: Path, redis_url: str, redis_client: aioredis.Redis, unique: str
) -> AsyncIterator[Apps]:
    org, other = f"fast-{unique}", f"fost-{unique}"
    settings = make_settings(tmp_path, redis_url=redis_url)
    tokens, other_tokens = make_tokens(settings, org), make_tokens(settings, other)
    for contact in ("c1", "c~2.x_y-z", "c 3", "c/4", "é5", "x" * 128, "x" * 129):
        await seed_contact(redis_client, org, contact, name=f"Own {contact}")
    await seed_contact(redis_client, other, "c1", name="Other c1")
    fast_app = create_app(settings, redis=redis_client, producer=MemoryPublisher())
    plain_app = create_app(
        settings, redis=redis_client, producer=MemoryPublisher(), monitor_fast_path=False
    )
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=fast_app), base_url="http://a") as f,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=plain_app), base_url="http://a") as p,
    ):
        yield Apps(f, p, fast_app, org, other, tokens, other_tokens)
    await clear_org(redis_client, org)
    await clear_org(redis_client, other)


def _fast_path(app: FastAPI) -> MonitorFastPath:
    layer: Any = app.middleware_stack
    while not isinstance(layer, MonitorFastPath):
        layer = layer.app
    return layer


def _cases(a: Apps) -> list[tuple[str, str, dict[str, str], bool]]:
    """(method, path, headers, served by the fast path)."""
    token = a.tokens.by_role["agent"]
    own = f"/v1/orgs/{a.org}/contacts"
    bearer = {"Authorization": f"Bearer {token}"}
    return [
        ("GET", f"{own}/c1/monitor", bearer, True),
        ("GET", f"{own}/c~2.x_y-z/monitor", bearer, True),
        ("GET", f"{own}/{'x' * 128}/monitor", bearer, True),
        ("GET", f"{own}/c1/monitor", {"Authorization": f"bearer {token}"}, True),
        ("GET", f"{own}/c1/monitor", {"Authorization": f"Bearer   {token}  "}, True),
        ("GET", f"{own}/c1/monitor", a.tokens.header("admin"), True),
        # to the app: ids that need decoding, too long, absent; odd requests; every refusal
        ("GET", f"{own}/c%203/monitor", bearer, False),
        ("GET", f"{own}/c%2F4/monitor", bearer, False),
        ("GET", f"{own}/%C3%A95/monitor", bearer, False),
        ("GET", f"{own}/c%31/monitor", bearer, False),
        ("GET", f"{own}/{'x' * 129}/monitor", bearer, False),
        ("GET", f"{own}/nobody/monitor", bearer, False),
        ("GET", f"{own}/c1/monitor?x=1", bearer, False),
        ("GET", f"{own}/c1/monitor/", bearer, False),
        ("HEAD", f"{own}/c1/monitor", bearer, False),
        ("GET", f"{own}/c1/monitor", {}, False),
        ("GET", f"{own}/c1/monitor", {"Authorization": "Bearer nope"}, False),
        ("GET", f"{own}/c1/monitor", {"Authorization": f"Basic {token}"}, False),
        ("GET", f"{own}/c1/monitor", {"Authorization": "Bearer"}, False),
        ("GET", f"{own}/c1/monitor", {"Authorization": f"Bearer{token}"}, False),
        ("GET", f"/v1/orgs/{a.other}/contacts/c1/monitor", bearer, False),
        (
            "GET",
            f"/v1/orgs/{a.other}/contacts/c1/monitor",
            {"Authorization": f"Bearer {a.other_tokens.by_role['agent']}"},
            True,
        ),
    ]


async def test_the_fast_path_answers_exactly_what_the_route_answers(apps: Apps) -> None:
    for method, path, headers, served in _cases(apps):
        before = _fast_path(apps.fast_app).served if apps.fast_app.middleware_stack else 0
        fast = await apps.fast.request(method, path, headers=headers)
        plain = await apps.plain.request(method, path, headers=headers)
        what = f"{method} {path} {headers}"
        assert fast.status_code == plain.status_code, what
        assert fast.content == plain.content, what
        assert sorted(fast.headers.items()) == sorted(plain.headers.items()), what
        assert _fast_path(apps.fast_app).served - before == int(served), what
        if served:
            assert fast.status_code == 200 and fast.json()["registration"]["name"], what


async def test_requests_it_serves_are_counted_under_the_route(apps: Apps) -> None:
    headers = apps.tokens.header("agent")
    for _ in range(3):
        response = await apps.fast.get(f"/v1/orgs/{apps.org}/contacts/c1/monitor", headers=headers)
        assert response.status_code == 200
    assert _fast_path(apps.fast_app).served == 3
    metrics = (await apps.fast.get("/metrics")).text
    line = (
        'em_api_requests_total{method="GET",route="/v1/orgs/{org_id}/contacts/{contact_id}'
        '/monitor",status="200"} 3.0'
    )
    assert line in metrics, metrics
