"""No org can read another's contacts by choosing ids shaped like keys (issue 17), end to end.

Black box: events go into Kafka, the real worker lands them in Redis, and the API (in process,
on the same Redis) answers a second org whose id is built to collide with the first org's keys
under the old layout. Also: ids holding `/` are routed exactly as encoded, refused ids are 422,
and a Redis filled by the release before the fix is cleaned and rebuilt by the new worker.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import pytest
import redis.asyncio as aioredis

from engagement_monitor import keyspace as ks
from engagement_monitor.snapshot_codec import unpack_snapshot
from read_api.app import create_app
from read_api.commands import MemoryPublisher
from tests.integration import legacy_layout as legacy
from tests.integration.harness import Pipeline, ago, figures, snapshot, wait_for
from tests.read_api.support import Tokens, clear_org, make_settings, make_tokens

pytestmark = pytest.mark.integration

SECRET_NAME = "Victim Secret-Name"
SECRET_EMAIL = "victim-secret@example.com"


def events(org: str, contact: str, name: str, email: str) -> list[tuple[str, bytes, Any]]:
    """A profile and one opened e-mail: the contact lands in the very_high segments."""
    key = ks.record_key(org, contact)
    base = {"org_id": org, "contact_id": contact}
    tag = f"{org}|{contact}"
    records: list[tuple[str, bytes, Any]] = [
        (
            "contact",
            key,
            {
                **base,
                "event_id": f"{tag}-u",
                "type": "upsert",
                "occurred_at": ago(3),
                "name": name,
                "email": email,
            },
        )
    ]
    for topic in ("dispatch", "delivery", "open"):
        value = {
            **base,
            "event_id": f"{tag}-{topic}",
            "channel": "email",
            "message_id": "m1",
            "occurred_at": ago(2),
        }
        if topic == "dispatch":
            value["dispatch_kind"] = "single"
        records.append((topic, key, value))
    return records


def path_id(text: str) -> str:
    return quote(text, safe="")


@dataclass
class Tenants:
    victim_org: str
    victim_contact: str
    attacker_org: str
    attacker_contact: str
    slash_contact: str
    victim: Tokens
    attacker: Tokens
    client: httpx.AsyncClient
    publisher: MemoryPublisher


@pytest.fixture
async def tenants(
    pipeline: Pipeline, redis_client: aioredis.Redis, tmp_path: Path
) -> AsyncIterator[Tenants]:
    victim_org = f"t{pipeline.unique}"
    # Under the old layout both of these were `em:{t…}:snap:x}:snap:y`.
    victim_contact, attacker_org, attacker_contact = "x}:snap:y", f"{victim_org}}}:snap:x", "y"
    assert legacy.snapshot_key(victim_org, victim_contact) == legacy.snapshot_key(
        attacker_org, attacker_contact
    )
    settings = make_settings(tmp_path, redis_url=pipeline.redis_url, topic_prefix=pipeline.prefix)
    victim, attacker = make_tokens(settings, victim_org), make_tokens(settings, attacker_org)
    publisher = MemoryPublisher()
    app = create_app(settings, redis=redis_client, producer=publisher)
    await pipeline.start_worker()
    slash_contact = "x/lists/vip"
    await pipeline.produce(
        [
            *events(victim_org, victim_contact, SECRET_NAME, SECRET_EMAIL),
            *events(victim_org, slash_contact, "Slash Person", "slash@example.com"),
            # The attacker's own contact, so its segments are not empty by construction.
            *events(attacker_org, "own", "Attacker Own", "own@example.com"),
        ]
    )
    for org, contact in (
        (victim_org, victim_contact),
        (victim_org, slash_contact),
        (attacker_org, "own"),
    ):
        await wait_for(
            lambda o=org, c=contact: snapshot(redis_client, o, c), what=f"{org}/{contact}"
        )
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            yield Tenants(
                victim_org,
                victim_contact,
                attacker_org,
                attacker_contact,
                slash_contact,
                victim,
                attacker,
                client,
                publisher,
            )
    finally:
        await clear_org(redis_client, victim_org)
        await clear_org(redis_client, attacker_org)


def no_secret(response: httpx.Response) -> None:
    assert SECRET_NAME not in response.text and SECRET_EMAIL not in response.text
    assert "x}:snap:y" not in response.text


async def test_the_colliding_org_gets_404_not_the_victims_snapshot(tenants: Tenants) -> None:
    t = tenants
    own = await t.client.get(
        f"/v1/orgs/{path_id(t.victim_org)}/contacts/{path_id(t.victim_contact)}/monitor",
        headers=t.victim.header("agent"),
    )
    assert own.status_code == 200
    assert own.json()["registration"]["name"] == SECRET_NAME  # the data is there to be stolen

    for role in ("agent", "operator", "admin"):
        stolen = await t.client.get(
            f"/v1/orgs/{path_id(t.attacker_org)}/contacts/{path_id(t.attacker_contact)}/monitor",
            headers=t.attacker.header(role),
        )
        assert stolen.status_code == 404, stolen.text
        no_secret(stolen)
        # And naming the victim's org with the attacker's token is the plain other-org 404.
        cross = await t.client.get(
            f"/v1/orgs/{path_id(t.victim_org)}/contacts/{path_id(t.victim_contact)}/monitor",
            headers=t.attacker.header(role),
        )
        assert cross.status_code == 404
        no_secret(cross)


async def test_segment_reads_of_the_colliding_org_hold_only_its_own_contacts(
    tenants: Tenants,
) -> None:
    t = tenants
    base = f"/v1/orgs/{path_id(t.attacker_org)}/segments"
    headers = t.attacker.header("agent")
    for query in ("tier=very_high", "tier=very_high&channel=email", "tier=high", "tier=low"):
        response = await t.client.get(f"{base}?{query}", headers=headers)
        assert response.status_code == 200, response.text
        assert {i["contact_id"] for i in response.json()["items"]} <= {"own"}
        no_secret(response)
    everything = await t.client.get(f"{base}?tier=very_high", headers=headers)
    assert [i["contact_id"] for i in everything.json()["items"]] == ["own"]
    # A cursor shaped like the victim's member only moves within the attacker's own segment.
    crafted = quote(ks.segment_member(t.victim_contact, 100.0), safe="")
    page = await t.client.get(f"{base}?tier=very_high&cursor={crafted}", headers=headers)
    assert page.status_code == 200
    assert {i["contact_id"] for i in page.json()["items"]} <= {"own"}
    no_secret(page)
    # The victim's own segment read lists the victim's contacts, decoded back to their ids.
    mine = await t.client.get(
        f"/v1/orgs/{path_id(t.victim_org)}/segments?tier=very_high",
        headers=t.victim.header("agent"),
    )
    assert {i["contact_id"] for i in mine.json()["items"]} == {t.victim_contact, t.slash_contact}


async def test_writes_of_the_colliding_org_find_no_victim_contact(tenants: Tenants) -> None:
    t = tenants
    response = await t.client.delete(
        f"/v1/orgs/{path_id(t.attacker_org)}/contacts/{path_id(t.attacker_contact)}",
        headers=t.attacker.header("operator"),
    )
    assert response.status_code == 404
    assert t.publisher.sent == []


async def test_an_id_with_slashes_is_one_id_not_a_longer_path(tenants: Tenants) -> None:
    t = tenants
    contact = path_id(t.slash_contact)  # x%2Flists%2Fvip
    base = f"/v1/orgs/{path_id(t.victim_org)}/contacts"
    read = await t.client.get(f"{base}/{contact}/monitor", headers=t.victim.header("agent"))
    assert read.status_code == 200
    assert read.json()["contact_id"] == t.slash_contact
    # DELETE .../contacts/x%2Flists%2Fvip deletes contact "x/lists/vip"; decoded before routing,
    # it used to be DELETE .../contacts/x/lists/vip: "remove contact x from list vip".
    deleted = await t.client.delete(f"{base}/{contact}", headers=t.victim.header("operator"))
    assert deleted.status_code == 202, deleted.text
    ((topic, key, record), (audit_topic, _, audit)) = t.publisher.sent  # the command, its audit
    assert topic.endswith("contact") and record["type"] == "delete"
    assert audit_topic.endswith("audit") and audit["contact_id"] == t.slash_contact
    assert record["contact_id"] == t.slash_contact and "list_id" not in record
    assert key == f"{t.victim_org}:{t.slash_contact}"


@pytest.mark.parametrize(
    ("segment", "shown"),
    [
        ("a%00b", "contains U+0000"),
        ("a%0Ab", "contains U+000A"),
        ("a%E2%80%A8", "contains U+2028"),
        ("a%FFb", "not valid UTF-8"),
    ],
)
async def test_a_refused_id_in_a_path_is_a_422_naming_it(
    tenants: Tenants, segment: str, shown: str
) -> None:
    t = tenants
    response = await t.client.get(
        f"/v1/orgs/{path_id(t.victim_org)}/contacts/{segment}/monitor",
        headers=t.victim.header("agent"),
    )
    assert response.status_code == 422, response.text
    assert f"contact_id: {shown}" in response.json()["detail"]


# ------------------------------------------------------------------------------ the upgrade
async def keys_matching(client: aioredis.Redis, patterns: tuple[str, ...]) -> list[bytes]:
    return [k for p in patterns async for k in client.scan_iter(match=p, count=1000)]


async def test_a_redis_filled_by_the_previous_release_is_purged_and_rebuilt(
    pipeline: Pipeline, redis_client: aioredis.Redis, tmp_path: Path
) -> None:
    victim_org = f"u{pipeline.unique}"
    victim_contact, attacker_org, attacker_contact = "x}:snap:y", f"{victim_org}}}:snap:x", "y"
    contacts = [(victim_org, victim_contact), (victim_org, "plain"), (attacker_org, "own")]
    worker = await pipeline.start_worker()
    await pipeline.produce(
        [
            *events(victim_org, victim_contact, SECRET_NAME, SECRET_EMAIL),
            *events(victim_org, "plain", "Plain Person", "plain@example.com"),
            *events(attacker_org, "own", "Attacker Own", "own@example.com"),
        ]
    )
    before = {}
    for org, contact in contacts:
        before[(org, contact)] = figures(
            await wait_for(lambda o=org, c=contact: snapshot(redis_client, o, c))
        )
    worker.stop()

    # Redis as the previous release left it: every contact under the old keys, every partition's
    # sentinel set, and none of the v2 keys.
    for org, contact in contacts:
        raw = await redis_client.get(ks.redis_snapshot_key(org, contact))
        assert raw is not None
        snap = orjson.loads(unpack_snapshot(raw))
        tiers: dict[str | None, tuple[str, float | None]] = {
            None: (snap["engagement"]["tier"], snap["engagement"]["rate"]),
            **{
                ch: (body["engagement"]["tier"], body["engagement"]["rate"])
                for ch, body in snap["channels"].items()
                if body["engagement"]["tier"] is not None
            },
        }
        await legacy.write_contact(redis_client, org, contact, 1, raw, tiers)
    for org in {org for org, _ in contacts}:
        await clear_org(redis_client, org)
    for p in range(pipeline.partitions):
        await redis_client.set(legacy.sentinel_key(pipeline.app_id, p), b"1")
        await redis_client.delete(ks.redis_sentinel_key(pipeline.app_id, p))
    legacy_keys = await keys_matching(redis_client, ks.LEGACY_REDIS_PATTERNS)
    assert len(legacy_keys) >= len(contacts) * 3 + pipeline.partitions

    restarted = await pipeline.start_worker("w1")
    for (org, contact), expected in before.items():
        got = await wait_for(
            lambda o=org, c=contact: snapshot(redis_client, o, c), what=f"{org}/{contact} rebuilt"
        )
        assert figures(got) == expected
    left = await keys_matching(redis_client, ks.LEGACY_REDIS_PATTERNS)
    assert left == []
    metrics = await restarted.metrics()
    purged = [
        float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith("em_redis_legacy_keys_purged_total")
    ]
    assert purged and purged[0] >= len(legacy_keys)

    # And the API on the upgraded Redis: the victim reads its contact, the attacker gets a 404.
    settings = make_settings(tmp_path, redis_url=pipeline.redis_url, topic_prefix=pipeline.prefix)
    victim, attacker = make_tokens(settings, victim_org), make_tokens(settings, attacker_org)
    app = create_app(settings, redis=redis_client, producer=MemoryPublisher())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://a") as c:
        own = await c.get(
            f"/v1/orgs/{path_id(victim_org)}/contacts/{path_id(victim_contact)}/monitor",
            headers=victim.header("agent"),
        )
        assert own.status_code == 200 and own.json()["registration"]["name"] == SECRET_NAME
        stolen = await c.get(
            f"/v1/orgs/{path_id(attacker_org)}/contacts/{attacker_contact}/monitor",
            headers=attacker.header("agent"),
        )
        assert stolen.status_code == 404
        no_secret(stolen)
    for org, _ in contacts:
        await clear_org(redis_client, org)
