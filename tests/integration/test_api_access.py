"""Every route x every role x own org / other org, against the real Redis (SPEC §5).

Snapshots and segment members are written with the worker's layout; write commands go to an
in-memory publisher here (the real Kafka path is `test_api_pipeline.py`).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis.asyncio as aioredis

from engagement_monitor import keyspace as ks
from models.events import parse_record
from models.outputs import AuditRecord
from models.snapshot import Snapshot
from read_api.app import create_app
from read_api.commands import MemoryPublisher
from tests.read_api.support import Tokens, clear_org, make_settings, make_tokens, seed_contact

pytestmark = pytest.mark.integration

ROLES = ("agent", "operator", "admin")


@dataclass
class World:
    client: httpx.AsyncClient
    publisher: MemoryPublisher
    org: str
    other: str
    tokens: Tokens
    other_tokens: Tokens
    prefix: str


@pytest.fixture
async def world(
    tmp_path: Path, redis_url: str, redis_client: aioredis.Redis, unique: str
) -> AsyncIterator[World]:
    org, other = f"own-{unique}", f"oth-{unique}"
    prefix = f"t{unique}."
    settings = make_settings(tmp_path, redis_url=redis_url, topic_prefix=prefix)
    tokens, other_tokens = make_tokens(settings, org), make_tokens(settings, other)
    await seed_contact(redis_client, org, "c1", name="Ana Own")
    await seed_contact(redis_client, other, "c1", name="Bruno Secret")
    await seed_contact(redis_client, other, "secret-only", name="Carla Secret")
    publisher = MemoryPublisher()
    app = create_app(settings, redis=redis_client, producer=publisher)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            yield World(client, publisher, org, other, tokens, other_tokens, prefix)
    finally:
        await clear_org(redis_client, org)
        await clear_org(redis_client, other)


# (name, method, path template, body, is_write, expected short topic)
ROUTES: list[tuple[str, str, str, Any, bool, str | None]] = [
    ("monitor", "GET", "/v1/orgs/{org}/contacts/{contact}/monitor", None, False, None),
    ("segments", "GET", "/v1/orgs/{org}/segments?tier=high", None, False, None),
    ("segments_ch", "GET", "/v1/orgs/{org}/segments?tier=high&channel=email", None, False, None),
    ("segments_csv", "GET", "/v1/orgs/{org}/segments.csv?tier=high", None, False, None),
    ("overview", "GET", "/v1/orgs/{org}/overview", None, False, None),
    ("history", "GET", "/v1/orgs/{org}/contacts/{contact}/tier-history", None, False, None),
    ("search", "GET", "/v1/orgs/{org}/contacts?q=Ana", None, False, None),
    ("heatmap", "GET", "/v1/orgs/{org}/heatmap", None, False, None),
    ("heatmap_c", "GET", "/v1/orgs/{org}/contacts/{contact}/heatmap", None, False, None),
    ("changes", "GET", "/v1/orgs/{org}/tier-changes", None, False, None),
    ("edit", "PATCH", "/v1/orgs/{org}/contacts/{contact}", {"name": "New"}, True, "contact"),
    ("delete", "DELETE", "/v1/orgs/{org}/contacts/{contact}", None, True, "contact"),
    (
        "list_add",
        "PUT",
        "/v1/orgs/{org}/contacts/{contact}/lists/l9",
        {"name": "L"},
        True,
        "contact",
    ),
    ("list_rm", "DELETE", "/v1/orgs/{org}/contacts/{contact}/lists/vip", None, True, "contact"),
    (
        "unsubscribe",
        "POST",
        "/v1/orgs/{org}/contacts/{contact}/channels/email/unsubscribe",
        None,
        True,
        "unsubscribe",
    ),
    (
        "send",
        "POST",
        "/v1/orgs/{org}/contacts/{contact}/messages",
        {"channel": "email", "text": "Hello"},
        True,
        "send-requests",
    ),
]
ROUTE_IDS = [r[0] for r in ROUTES]
SECRETS = ("Bruno Secret", "Carla Secret", "secret-only")


async def _call(
    w: World, route: tuple[Any, ...], role: str, org: str, contact: str
) -> httpx.Response:
    _name, method, template, body, _write, _topic = route
    path = template.format(org=org, contact=contact)
    return await w.client.request(method, path, json=body, headers=w.tokens.header(role))


def _assert_no_leak(w: World, response: httpx.Response) -> None:
    for secret in (w.other, *SECRETS):
        assert secret not in response.text, (secret, response.text)


@pytest.mark.parametrize("route", ROUTES, ids=ROUTE_IDS)
@pytest.mark.parametrize("role", ROLES)
async def test_own_org(world: World, route: tuple[Any, ...], role: str) -> None:
    w = world
    _name, _method, _template, _body, write, topic = route
    response = await _call(w, route, role, w.org, "c1")
    _assert_no_leak(w, response)
    if write and role == "agent":
        assert response.status_code == 403
        assert w.publisher.sent == []
        return
    expected = 202 if write else 200
    assert response.status_code == expected, response.text
    if not write:
        return
    ((sent_topic, key, record), (audit_topic, audit_key, audit)) = w.publisher.sent
    assert sent_topic == f"{w.prefix}{topic}"
    assert key == f"{w.org}:c1"
    assert record["org_id"] == w.org and record["contact_id"] == "c1"
    # Who asked: on the command (headers) and in its audit record, after it.
    who = [("em-actor-name", f"{role}@{w.org}".encode()), ("em-actor-role", role.encode())]
    assert w.publisher.headers == [who, who]
    assert (audit_topic, audit_key) == (f"{w.prefix}audit", key)
    AuditRecord.model_validate(audit)
    assert audit["actor"] == {"name": f"{role}@{w.org}", "role": role}
    assert audit["command_topic"] == sent_topic and audit["idempotency_key"] is None
    assert audit["command_id"] == record.get("event_id", record.get("request_id"))
    answer = response.json()
    assert answer["accepted"] is True and answer["topic"] == sent_topic
    if topic == "send-requests":
        assert answer["request_id"] == record["request_id"]
        assert record["requested_by"] == f"{role}@{w.org}"
    else:
        assert answer["event_id"] == record["event_id"]
        # what the worker will do with it: its own parser accepts it
        from datetime import UTC, datetime

        from counting import CountingConfig

        parse_record(topic, orjson.dumps(record), datetime.now(UTC), CountingConfig())


@pytest.mark.parametrize("route", ROUTES, ids=ROUTE_IDS)
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("contact", ["c1", "secret-only"])
async def test_other_org_is_404_and_shows_nothing(
    world: World, route: tuple[Any, ...], role: str, contact: str
) -> None:
    """The other org has these very contacts; the answer is the same as for nothing at all."""
    w = world
    response = await _call(w, route, role, w.other, contact)
    assert response.status_code == 404, response.text
    assert response.json() == {
        "detail": "not found: no such contact, list or segment in your organization"
    }
    _assert_no_leak(w, response)
    assert w.publisher.sent == []


@pytest.mark.parametrize(
    "route",
    [r for r in ROUTES if "{contact}" in r[2]],
    ids=[r[0] for r in ROUTES if "{contact}" in r[2]],
)
@pytest.mark.parametrize("role", ["operator", "admin"])
async def test_contact_without_snapshot_is_404(
    world: World, route: tuple[Any, ...], role: str
) -> None:
    """Also for writes: an org cannot probe ids, and the page only acts on contacts it shows.
    ("secret-only" exists in the other org: still 404 here.)"""
    w = world
    for contact in ("nobody", "secret-only"):
        response = await _call(w, route, role, w.org, contact)
        assert response.status_code == 404, response.text
    assert w.publisher.sent == []


async def test_monitor_serves_the_snapshot(world: World) -> None:
    w = world
    response = await w.client.get(
        f"/v1/orgs/{w.org}/contacts/c1/monitor", headers=w.tokens.header("agent")
    )
    snap = Snapshot.model_validate(response.json())
    assert snap.org_id == w.org and snap.registration.name == "Ana Own"
    assert snap.registration.origin is not None
    assert snap.registration.origin.label == "CSV Import - leads.csv"
    assert response.headers["content-type"] == "application/json"


async def test_the_other_orgs_tokens_see_only_their_org(world: World) -> None:
    w = world
    response = await w.client.get(
        f"/v1/orgs/{w.other}/contacts/c1/monitor", headers=w.other_tokens.header("agent")
    )
    assert response.status_code == 200 and response.json()["registration"]["name"] == "Bruno Secret"
    response = await w.client.get(
        f"/v1/orgs/{w.org}/contacts/c1/monitor", headers=w.other_tokens.header("admin")
    )
    assert response.status_code == 404 and "Ana Own" not in response.text


async def test_segments_paginate_most_engaged_first(
    world: World, redis_client: aioredis.Redis
) -> None:
    w = world
    rates = [50.0 + i * 0.5 for i in range(23)]  # 23 contacts in "high"
    pipe = redis_client.pipeline()
    for i, rate in enumerate(rates):
        pipe.zadd(
            ks.redis_segment_key(w.org, None, "high"), {ks.segment_member(f"p{i:02d}", rate): 0}
        )
    await pipe.execute()
    seen: list[tuple[str, float]] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"tier": "high", "limit": 10}
        if cursor:
            params["cursor"] = cursor
        response = await w.client.get(
            f"/v1/orgs/{w.org}/segments", params=params, headers=w.tokens.header("agent")
        )
        assert response.status_code == 200
        page = response.json()
        assert page["tier"] == "high" and page["channel"] is None
        seen.extend((item["contact_id"], item["rate"]) for item in page["items"])
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3  # 10 + 10 + 4: the last page has no cursor, and no empty page follows
    assert len(seen) == 24 and len({c for c, _ in seen}) == 24  # 23 + c1, each once
    assert [r for _, r in seen] == sorted((r for _, r in seen), reverse=True)
    assert seen[0] == ("p22", 61.0) and ("c1", 50.0) in seen


async def test_segment_per_channel_and_empty(world: World) -> None:
    w = world
    headers = w.tokens.header("agent")
    response = await w.client.get(
        f"/v1/orgs/{w.org}/segments?tier=high&channel=email", headers=headers
    )
    assert response.json() == {
        "tier": "high",
        "channel": "email",
        "items": [{"contact_id": "c1", "name": "Ana Own", "rate": 66.67}],
        "next_cursor": None,
    }
    response = await w.client.get(f"/v1/orgs/{w.org}/segments?tier=very_high", headers=headers)
    assert response.json()["items"] == []


async def test_segment_csv_streams_the_whole_segment_with_exact_quoting(
    world: World, redis_client: aioredis.Redis
) -> None:
    """SPEC §7.4: header, every member most engaged first (across the export's pages), names
    with commas, quotes and line breaks intact, a formula-looking name defused."""
    import csv
    import io

    w = world
    names = ['Souza, Ana "Aninha"', "Line\nBreak", "=HYPERLINK(1)", "Zé Ümlaut"]
    for i in range(1203):  # more than two export pages of 500
        name = names[i % len(names)] if i < len(names) else f"Contact {i}"
        await seed_contact(
            redis_client, w.org, f"x{i:04d}", name=name, overall=("low", 20 + i % 30)
        )
    response = await w.client.get(
        f"/v1/orgs/{w.org}/segments.csv?tier=low", headers=w.tokens.header("agent")
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert 'filename="segment-low-overall.csv"' in response.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == ["contact_id", "name", "email", "phone", "rate", "tier"]
    body = rows[1:]
    assert len(body) == 1203 and len({r[0] for r in body}) == 1203
    rates = [float(r[4]) for r in body]
    assert rates == sorted(rates, reverse=True)
    by_id = {r[0]: r for r in body}
    assert by_id["x0000"][1] == 'Souza, Ana "Aninha"'
    assert by_id["x0001"][1] == "Line\nBreak"
    assert by_id["x0002"][1] == "'=HYPERLINK(1)"
    assert by_id["x0003"][1] == "Zé Ümlaut"
    assert by_id["x0000"][2:] == ["x0000@example.com", "+5511999990000", "20.00", "low"]
    # per channel, and an empty segment is just the header
    email = await w.client.get(
        f"/v1/orgs/{w.org}/segments.csv?tier=high&channel=email", headers=w.tokens.header("agent")
    )
    assert [r[0] for r in csv.reader(io.StringIO(email.text))][1:] == [
        "c1",
        *(f"x{i:04d}" for i in range(1203)),
    ]
    empty = await w.client.get(
        f"/v1/orgs/{w.org}/segments.csv?tier=very_high", headers=w.tokens.header("agent")
    )
    assert empty.text == "contact_id,name,email,phone,rate,tier\r\n"
    bad = await w.client.get(
        f"/v1/orgs/{w.org}/segments.csv?tier=great", headers=w.tokens.header("agent")
    )
    assert bad.status_code == 422


async def test_overview_counts_exactly_what_the_snapshots_show(
    world: World, redis_client: aioredis.Redis
) -> None:
    w = world
    await seed_contact(redis_client, w.org, "v1", overall=("very_high", 80.0))
    await seed_contact(redis_client, w.org, "v2", overall=("low", 30.0), per_channel={})
    response = await w.client.get(f"/v1/orgs/{w.org}/overview", headers=w.tokens.header("agent"))
    assert response.status_code == 200
    body = response.json()
    assert body["contacts"] == 3  # c1 (high), v1, v2
    assert body["tiers"]["overall"] == {
        "no_engagement": 0,
        "low": 1,
        "high": 1,
        "very_high": 1,
        "none": 0,
    }
    # every sample snapshot shows email (subscribed) and sms (unsubscribed); only c1 and v1
    # were given an email tier, and nobody an sms one
    assert body["tiers"]["by_channel"]["email"] == {
        "no_engagement": 0,
        "low": 0,
        "high": 2,
        "very_high": 0,
        "none": 1,
    }
    assert body["tiers"]["by_channel"]["sms"]["none"] == 3
    assert body["tiers"]["by_channel"]["whatsapp"]["none"] == 0
    assert body["subscriptions"]["email"] == {"subscribed": 3, "unsubscribed": 0}
    assert body["subscriptions"]["sms"] == {"subscribed": 0, "unsubscribed": 3}
    assert body["as_of"].endswith("Z")


async def test_search_finds_by_id_name_email_phone_in_that_order_once_each(
    world: World, redis_client: aioredis.Redis
) -> None:
    w = world
    await seed_contact(redis_client, w.org, "anabel", name="Zed Anabel")  # id "ana..." no
    await seed_contact(redis_client, w.org, "n1", name="Ana Maria")
    await seed_contact(redis_client, w.org, "n2", name="anastácia Q")
    await seed_contact(redis_client, w.org, "e1", name="Bob")  # e-mail e1@example.com
    await seed_contact(redis_client, w.org, "ana", name="Carla")  # its id is the query
    headers = w.tokens.header("agent")

    async def find(q: str, **params: Any) -> dict[str, Any]:
        response = await w.client.get(
            f"/v1/orgs/{w.org}/contacts", params={"q": q, **params}, headers=headers
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    found = await find("ana")
    ids = [item["contact_id"] for item in found["items"]]
    # the exact id first, then names (case-insensitive: c1 is "Ana Own"), then e-mails
    # (ana@example.com is "ana"'s own, already listed; anabel@example.com), each contact once
    assert ids == ["ana", "n1", "c1", "n2", "anabel"], ids
    # an id matches exactly, names and e-mails whatever the case
    upper = [item["contact_id"] for item in (await find("ANA"))["items"]]
    assert upper == ["n1", "c1", "n2", "ana", "anabel"], upper
    assert found["items"][1] == {
        "contact_id": "n1",
        "name": "Ana Maria",
        "email": "n1@example.com",
        "phone": "+5511999990000",
        "tier": "high",
        "rate": 50.0,
    }
    assert found["next_cursor"] is None
    # pages of 2: the same list, no repeats, three pages, then no cursor
    paged: list[str] = []
    pages = 0
    cursor: str | None = None
    while True:
        page = await find("ana", limit=2, **({"cursor": cursor} if cursor else {}))
        paged += [i["contact_id"] for i in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert paged == ids and pages == 3
    # phones by their digits, with or without + and spaces; "c1" and the others share one
    by_phone = await find("+55 11 99999")
    assert {i["contact_id"] for i in by_phone["items"]} == {"c1", "anabel", "n1", "n2", "e1", "ana"}
    assert (await find("e1@ex"))["items"][0]["contact_id"] == "e1"
    assert (await find("nobody"))["items"] == []
    # another org's contacts are never found
    assert (await find("Bruno"))["items"] == [] and (await find("secret-only"))["items"] == []
    assert (await w.client.get(f"/v1/orgs/{w.org}/contacts", headers=headers)).status_code == 422


async def test_patch_publishes_only_the_fields_given(world: World) -> None:
    w = world
    response = await w.client.patch(
        f"/v1/orgs/{w.org}/contacts/c1",
        json={"phone": "+5511988887777", "email": None, "origin": {"type": "app", "app": "Omie"}},
        headers=w.tokens.header("operator"),
    )
    assert response.status_code == 202
    ((_topic, _key, record), _audit) = w.publisher.sent
    assert record["type"] == "upsert"
    assert record["phone"] == "+5511988887777" and record["email"] is None
    assert record["origin"] == {"type": "app", "app": "Omie"}
    assert "name" not in record


@pytest.mark.parametrize("route", [r for r in ROUTES if r[4]], ids=[r[0] for r in ROUTES if r[4]])
async def test_a_retry_with_the_same_idempotency_key_is_the_same_command(
    world: World, route: tuple[Any, ...]
) -> None:
    w = world
    _name, method, template, body, _write, _topic = route
    path = template.format(org=w.org, contact="c1")
    ids = []
    for key in ("k-1", "k-1", "k-2"):
        headers = {**w.tokens.header("operator"), "Idempotency-Key": key}
        response = await w.client.request(method, path, json=body, headers=headers)
        assert response.status_code == 202, response.text
        answer = response.json()
        ids.append(answer.get("event_id") or answer.get("request_id"))
    assert ids[0] == ids[1] != ids[2]  # a retry keeps the id; another key is another command
    published = [
        r.get("event_id") or r.get("request_id")
        for topic, _, r in w.publisher.sent
        if not topic.endswith("audit")
    ]
    assert published == ids
    audited = [r for topic, _, r in w.publisher.sent if topic.endswith("audit")]
    assert [(a["command_id"], a["idempotency_key"]) for a in audited] == list(
        zip(ids, ("k-1", "k-1", "k-2"), strict=True)
    )
    # Another org with the same key gets another id: keys are the caller's, ids are global.
    other = template.format(org=w.other, contact="c1")
    headers = {**w.other_tokens.header("operator"), "Idempotency-Key": "k-1"}
    answer = (await w.client.request(method, other, json=body, headers=headers)).json()
    assert (answer.get("event_id") or answer.get("request_id")) != ids[0]


async def test_an_idempotency_key_with_a_control_character_is_422(world: World) -> None:
    w = world
    headers = {**w.tokens.header("operator"), "Idempotency-Key": "a\tb"}
    response = await w.client.delete(f"/v1/orgs/{w.org}/contacts/c1", headers=headers)
    assert response.status_code == 422, response.text
    assert "U+0009" in response.text


async def test_kafka_down_is_503_and_nothing_is_accepted(world: World) -> None:
    w = world
    w.publisher.fail = True
    response = await w.client.delete(
        f"/v1/orgs/{w.org}/contacts/c1", headers=w.tokens.header("admin")
    )
    assert response.status_code == 503
    assert "try again with the same Idempotency-Key" in response.json()["detail"]


async def test_health_and_metrics(world: World) -> None:
    w = world
    assert (await w.client.get("/healthz")).json() == {
        "status": "ok",
        "redis": "ok",
        "kafka": "memory",
    }
    await w.client.get(f"/v1/orgs/{w.org}/contacts/c1/monitor", headers=w.tokens.header("agent"))
    await w.client.get(f"/v1/orgs/{w.org}/contacts/zz/monitor", headers=w.tokens.header("agent"))
    await w.client.get(f"/v1/orgs/{w.org}/contacts/zz/monitor")
    await w.client.put(
        f"/v1/orgs/{w.org}/contacts/c1/lists/l1", headers=w.tokens.header("operator")
    )
    await w.client.get("/no/such/path")
    text = (await w.client.get("/metrics")).text
    route = "/v1/orgs/{org_id}/contacts/{contact_id}/monitor"
    for status in ("200", "404", "401"):
        assert (
            f'em_api_requests_total{{method="GET",route="{route}",status="{status}"}} 1.0' in text
        )
    assert f'em_api_request_seconds_count{{method="GET",route="{route}"}} 3.0' in text
    assert 'em_api_commands_total{topic="contact",type="list_added"} 1.0' in text
    assert 'route="unmatched",status="404"' in text
    assert "c1" not in text and w.org not in text  # no ids in labels


def _cli(settings_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`engagement-monitor token ...` as an operator runs it, in its own process."""
    env = {**os.environ, "EM_API_TOKENS_FILE": str(settings_file)}
    return subprocess.run(
        [sys.executable, "-m", "engagement_monitor.cli", "token", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_tokens_listed_without_secrets_and_revoked_while_the_api_serves(
    world: World, tmp_path: Path
) -> None:
    w = world
    tokens_file = tmp_path / "tokens.json"
    made = _cli(tokens_file, "create", "--org", w.org, "--role", "agent", "--name", "kiosk")
    assert made.returncode == 0, made.stderr
    secret = made.stdout.strip()
    url = f"/v1/orgs/{w.org}/contacts/c1/monitor"
    bearer = {"Authorization": f"Bearer {secret}"}
    assert (await w.client.get(url, headers=bearer)).status_code == 200

    listed = _cli(tokens_file, "list", "--org", w.org)
    assert listed.returncode == 0, listed.stderr
    rows = [line.split("\t") for line in listed.stdout.splitlines()]
    assert [w.org, "agent", "kiosk"] == next(r[:3] for r in rows if r[2] == "kiosk")
    every_secret = [secret, *w.tokens.by_role.values()]
    assert not any(s in listed.stdout + listed.stderr for s in every_secret)

    revoked = _cli(tokens_file, "revoke", "--org", w.org, "--name", "kiosk")
    assert revoked.returncode == 0, revoked.stderr
    assert secret not in revoked.stdout
    # The serving API refuses it within seconds, without a restart; the others still work.
    deadline = time.monotonic() + 5
    while (status := (await w.client.get(url, headers=bearer)).status_code) != 401:
        assert time.monotonic() < deadline, f"revoked token still answered {status}"
        await asyncio.sleep(0.1)
    assert (await w.client.get(url, headers=w.tokens.header("agent"))).status_code == 200
    unknown = _cli(tokens_file, "revoke", "--org", w.org, "--name", "kiosk")
    assert unknown.returncode != 0 and "no token" in unknown.stderr
