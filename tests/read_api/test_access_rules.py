"""Access rules and input checks that are decided before Redis or Kafka are touched.

The app here points at a Redis that does not exist and a publisher that records: any answer
below is given without I/O, which is also why the order of the checks can leak nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from read_api.app import create_app
from read_api.body_limit import MAX_BODY_BYTES
from read_api.commands import MemoryPublisher
from tests.read_api.support import Tokens, make_settings, make_tokens

ORG = "org-rules"
WRITES: list[tuple[str, str, Any]] = [
    ("PATCH", "/v1/orgs/{org}/contacts/c1", {"name": "Ana"}),
    ("DELETE", "/v1/orgs/{org}/contacts/c1", None),
    ("PUT", "/v1/orgs/{org}/contacts/c1/lists/vip", {"name": "VIP"}),
    ("DELETE", "/v1/orgs/{org}/contacts/c1/lists/vip", None),
    ("POST", "/v1/orgs/{org}/contacts/c1/channels/sms/unsubscribe", None),
    ("POST", "/v1/orgs/{org}/contacts/c1/messages", {"channel": "sms", "text": "hi"}),
]
READS = [
    "/v1/orgs/{org}/contacts/c1/monitor",
    "/v1/orgs/{org}/segments?tier=high",
]


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Tokens, MemoryPublisher]]:
    settings = make_settings(tmp_path, redis_url="redis://127.0.0.1:1/0")
    tokens = make_tokens(settings, ORG)
    publisher = MemoryPublisher()
    app = create_app(settings, producer=publisher)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        yield client, tokens, publisher


async def _call(
    client: httpx.AsyncClient, method: str, path: str, body: Any, headers: dict[str, str]
) -> httpx.Response:
    return await client.request(method, path, json=body, headers=headers)


@pytest.mark.parametrize(("method", "path", "body"), [*WRITES, *(("GET", p, None) for p in READS)])
@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}, {"Authorization": ""}],
    ids=["none", "unknown", "basic", "empty"],
)
async def test_no_or_unknown_token_is_401(
    setup: tuple[httpx.AsyncClient, Tokens, MemoryPublisher],
    method: str,
    path: str,
    body: Any,
    headers: dict[str, str],
) -> None:
    client, _tokens, publisher = setup
    response = await _call(client, method, path.format(org=ORG), body, headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert "token" in response.json()["detail"]
    assert publisher.sent == []


@pytest.mark.parametrize(("method", "path", "body"), WRITES)
async def test_agent_may_not_write(
    setup: tuple[httpx.AsyncClient, Tokens, MemoryPublisher], method: str, path: str, body: Any
) -> None:
    client, tokens, publisher = setup
    response = await _call(client, method, path.format(org=ORG), body, tokens.header("agent"))
    assert response.status_code == 403
    assert "operator or admin" in response.json()["detail"]
    assert publisher.sent == []


@pytest.mark.parametrize(("method", "path", "body"), [*WRITES, *(("GET", p, None) for p in READS)])
@pytest.mark.parametrize("role", ["agent", "operator", "admin"])
@pytest.mark.parametrize("other", ["org-other", "x" * 300, "org-rule"])
async def test_another_org_is_404_whatever_the_role(
    setup: tuple[httpx.AsyncClient, Tokens, MemoryPublisher],
    method: str,
    path: str,
    body: Any,
    role: str,
    other: str,
) -> None:
    client, tokens, publisher = setup
    response = await _call(client, method, path.format(org=other), body, tokens.header(role))
    assert response.status_code == 404
    assert other not in response.text
    assert publisher.sent == []


@pytest.mark.parametrize(
    ("method", "path", "body", "expected"),
    [
        ("PATCH", "/contacts/c1", {"phone": "11 9999"}, "phone: not an E.164 phone number"),
        ("PATCH", "/contacts/c1", {"email": "ana"}, "email: not an e-mail address"),
        ("PATCH", "/contacts/c1", {}, "nothing to change"),
        ("PATCH", "/contacts/c1", {"age": 3}, "age: unknown field"),
        ("PATCH", "/contacts/c1", {"origin": {"type": "csv"}}, "origin.file: required"),
        ("PATCH", "/contacts/c1", {"origin": {"type": "fax"}}, "origin"),
        ("PATCH", "/contacts/c1", {"name": ""}, "name: string should have at least 1"),
        ("PUT", "/contacts/c1/lists/vip", {"name": ""}, "name: string should have at least 1"),
        ("PUT", "/contacts/" + "c" * 129 + "/lists/vip", None, "contact_id: string should"),
        ("PUT", "/contacts/c1/lists/" + "l" * 129, None, "list_id: string should have at most"),
        ("POST", "/contacts/c1/channels/fax/unsubscribe", None, "unknown channel 'fax'"),
        ("POST", "/contacts/c1/messages", {"channel": "fax", "text": "x"}, "unknown channel"),
        ("POST", "/contacts/c1/messages", {"channel": "sms"}, "exactly one of text or template"),
        (
            "POST",
            "/contacts/c1/messages",
            {"channel": "sms", "text": "x", "template_id": "t"},
            "exactly one of text or template",
        ),
        ("GET", "/segments", None, "tier: required"),
        ("GET", "/segments?tier=great", None, "tier: input should be 'no_engagement'"),
        ("GET", "/segments?tier=low&channel=fax", None, "channel: unknown channel 'fax'"),
        ("GET", "/segments?tier=low&limit=0", None, "limit: input should be greater than"),
        ("GET", "/segments?tier=low&limit=501", None, "limit: input should be less than"),
        ("GET", "/segments?tier=low&cursor=abc", None, "cursor: not a cursor"),
    ],
)
async def test_bad_input_is_422_with_a_message_to_act_on(
    setup: tuple[httpx.AsyncClient, Tokens, MemoryPublisher],
    method: str,
    path: str,
    body: Any,
    expected: str,
) -> None:
    client, tokens, publisher = setup
    response = await _call(client, method, f"/v1/orgs/{ORG}{path}", body, tokens.header("operator"))
    assert response.status_code == 422, response.text
    problem = response.json()
    assert expected in problem["detail"], problem
    assert problem["errors"] and all({"field", "message"} == set(e) for e in problem["errors"])
    assert publisher.sent == []


async def test_body_that_is_not_json_is_422(
    setup: tuple[httpx.AsyncClient, Tokens, MemoryPublisher],
) -> None:
    client, tokens, _ = setup
    response = await client.patch(
        f"/v1/orgs/{ORG}/contacts/c1",
        content=b"{name",
        headers={**tokens.header("admin"), "Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert "not valid JSON" in response.json()["detail"]


async def test_whoami(setup: tuple[httpx.AsyncClient, Tokens, MemoryPublisher]) -> None:
    client, tokens, _ = setup
    for role in ("agent", "operator", "admin"):
        response = await client.get("/v1/whoami", headers=tokens.header(role))
        assert response.status_code == 200
        assert response.json() == {
            "org_id": ORG,
            "role": role,
            "name": f"{role}@{ORG}",
            "may_write": role != "agent",
            "channels": ["sms", "email", "whatsapp"],
        }
    assert (await client.get("/v1/whoami")).status_code == 401


async def test_health_is_503_without_redis(
    setup: tuple[httpx.AsyncClient, Tokens, MemoryPublisher],
) -> None:
    client, _, _ = setup
    response = await client.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "redis": "unreachable", "kafka": "memory"}


async def test_page_and_assets_are_served_without_a_token(
    setup: tuple[httpx.AsyncClient, Tokens, MemoryPublisher],
) -> None:
    client, _, _ = setup
    page = await client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for label in ("Registration data", "Contact list", "Include contact in a list"):
        assert label in page.text
    for label in ("Active channels", "Dispatched messages", "Dispatches by channel"):
        assert label in page.text
    for label in ("Engagement rate", "Delivery rate", "Open rate", "Click-through rate"):
        assert label in page.text
    assert "Response rate" in page.text and "Best send times" in page.text
    assert (await client.get("/static/app.js")).status_code == 200
    assert (await client.get("/static/app.css")).status_code == 200


async def test_openapi_documents_every_route_with_models(
    setup: tuple[httpx.AsyncClient, Tokens, MemoryPublisher],
) -> None:
    client, _, _ = setup
    doc = (await client.get("/openapi.json")).json()
    paths = doc["paths"]
    expected = {
        ("get", "/v1/orgs/{org_id}/contacts/{contact_id}/monitor"): "200",
        ("get", "/v1/orgs/{org_id}/segments"): "200",
        ("patch", "/v1/orgs/{org_id}/contacts/{contact_id}"): "202",
        ("delete", "/v1/orgs/{org_id}/contacts/{contact_id}"): "202",
        ("put", "/v1/orgs/{org_id}/contacts/{contact_id}/lists/{list_id}"): "202",
        ("delete", "/v1/orgs/{org_id}/contacts/{contact_id}/lists/{list_id}"): "202",
        ("post", "/v1/orgs/{org_id}/contacts/{contact_id}/channels/{channel}/unsubscribe"): "202",
        ("post", "/v1/orgs/{org_id}/contacts/{contact_id}/messages"): "202",
        ("get", "/v1/whoami"): "200",
        ("get", "/healthz"): "200",
        ("get", "/metrics"): "200",
    }
    for (method, path), ok in expected.items():
        responses = paths[path][method]["responses"]
        assert ok in responses, (method, path)
        assert "content" in responses[ok], (method, path)
        if path.startswith("/v1/orgs"):
            assert {"401", "404", "422"} <= set(responses), (method, path)
        if method != "get":
            assert {"403", "503"} <= set(responses), (method, path)
    monitor = paths["/v1/orgs/{org_id}/contacts/{contact_id}/monitor"]["get"]
    assert monitor["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Snapshot"
    }
    assert "bearer" in doc["components"]["securitySchemes"]


async def test_an_oversize_body_is_413_before_it_is_read(
    setup: tuple[httpx.AsyncClient, Tokens, MemoryPublisher],
) -> None:
    client, tokens, publisher = setup
    huge = {"channel": "sms", "text": "x" * (MAX_BODY_BYTES + 1)}
    response = await client.post(
        f"/v1/orgs/{ORG}/contacts/c1/messages", json=huge, headers=tokens.header("operator")
    )
    assert response.status_code == 413
    assert "limit" in response.json()["detail"]

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
        for _ in range(MAX_BODY_BYTES // 1024 + 2):
            yield b"x" * 1024

    response = await client.post(
        f"/v1/orgs/{ORG}/contacts/c1/messages",
        content=chunks(),
        headers={**tokens.header("operator"), "content-type": "application/json"},
    )
    assert 400 <= response.status_code < 500
    assert publisher.sent == []


async def test_docs_load_nothing_from_a_cdn(
    setup: tuple[httpx.AsyncClient, Tokens, MemoryPublisher],
) -> None:
    """/docs must work on a machine without internet: every script and style it names is
    served by the API itself."""
    import re

    client, _tokens, _publisher = setup
    page = await client.get("/docs")
    assert page.status_code == 200
    urls = re.findall(r"""(?:src|href)=["']([^"']+)["']|url: ?["']([^"']+)["']""", page.text)
    named = [u for pair in urls for u in pair if u]
    assert named and all(u.startswith("/") for u in named), named
    for url in named:
        assert (await client.get(url)).status_code == 200, url
