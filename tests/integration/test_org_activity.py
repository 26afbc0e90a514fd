"""The landing's heatmaps and tier-change counts (issue 15) through the worker's real Redis
script and the API: the org's figures are the sums of its contacts', exact through replays,
updates, late writes of an older version and removals."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis.asyncio as aioredis

from agents.org_index import change_members, org_index
from agents.processor import SnapshotWrite
from agents.redis_sink import RedisSink
from engagement_monitor import keyspace as ks
from read_api.app import create_app
from read_api.commands import MemoryPublisher
from tests.read_api.support import Tokens, clear_org, make_settings, make_tokens, sample_snapshot

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC).replace(microsecond=0)


def _row(days_ago: float, channel: str | None, previous: str | None, tier: str | None) -> list[Any]:
    at = (NOW - timedelta(days=days_ago)).isoformat().replace("+00:00", "Z")
    return [at, channel, previous, tier, 40.0, "event"]


def write(
    org: str,
    contact: str,
    version: int,
    hours: dict[str, dict[int, int]] | None,
    history: list[list[Any]] | None = None,
    *,
    name: str = "Ana Souza",
) -> SnapshotWrite:
    """A contact's write as the processor makes it (None hours: remove the contact)."""
    if hours is None:
        return SnapshotWrite(org, contact, version, None, {})
    snap = sample_snapshot(org, contact, name=name)
    changes = change_members(history or [], NOW)
    return SnapshotWrite(
        org,
        contact,
        version,
        orjson.dumps(snap),
        {None: ("high", 50.0)},
        org_index(snap, hours, changes),
    )


async def org_heat(client: aioredis.Redis, org: str) -> dict[str, int]:
    held = await client.hgetall(ks.redis_heat_key(org))
    return {k.decode(): int(v) for k, v in held.items()}


@pytest.fixture
async def org(redis_client: aioredis.Redis, unique: str) -> AsyncIterator[str]:
    name = f"act-{unique}"
    yield name
    await clear_org(redis_client, name)


@pytest.fixture
async def sink(redis_url: str) -> AsyncIterator[RedisSink]:
    made = RedisSink(redis_url, "act-test")
    yield made
    await made.close()


async def test_org_heatmap_is_the_sum_of_its_contacts_through_every_kind_of_write(
    sink: RedisSink, redis_client: aioredis.Redis, org: str
) -> None:
    await sink.apply(
        [
            write(org, "a", 10, {"email": {10: 2}, "sms": {30: 1}}),
            write(org, "b", 10, {"email": {10: 1}}),
            write(org, "c", 10, {}),  # no interactions: nothing to add
        ]
    )
    assert await org_heat(redis_client, org) == {"email:10": 3, "sms:30": 1}
    # a replayed checkpoint (same version, same content) adds nothing
    await sink.apply([write(org, "a", 10, {"email": {10: 2}, "sms": {30: 1}})])
    assert await org_heat(redis_client, org) == {"email:10": 3, "sms:30": 1}
    # an update adds only its difference; a count that reaches 0 leaves the hash
    await sink.apply([write(org, "a", 11, {"email": {10: 1, 11: 1}})])
    assert await org_heat(redis_client, org) == {"email:10": 2, "email:11": 1}
    # a late write of an older version (a worker that lost the partition) changes nothing
    await sink.apply([write(org, "a", 9, {"whatsapp": {1: 50}})])
    assert await org_heat(redis_client, org) == {"email:10": 2, "email:11": 1}
    # a removal takes the contact's counts away; writing it again adds them back once
    await sink.apply([write(org, "b", 12, None)])
    assert await org_heat(redis_client, org) == {"email:10": 1, "email:11": 1}
    await sink.apply(
        [write(org, "b", 13, {"email": {10: 1}}), write(org, "b", 13, {"email": {10: 1}})]
    )
    assert await org_heat(redis_client, org) == {"email:10": 2, "email:11": 1}
    # Redis flushed and rebuilt (the worker re-snapshots every contact): the same sums
    await clear_org(redis_client, org)
    await sink.apply(
        [write(org, "a", 11, {"email": {10: 1, 11: 1}}), write(org, "b", 13, {"email": {10: 1}})]
    )
    assert await org_heat(redis_client, org) == {"email:10": 2, "email:11": 1}


async def test_tier_change_sets_follow_the_contacts_history(
    sink: RedisSink, redis_client: aioredis.Redis, org: str
) -> None:
    up = ks.redis_changes_key(org, "up")
    new = ks.redis_changes_key(org, "new")
    down = ks.redis_changes_key(org, "down")
    history = [_row(3, None, None, "low"), _row(0.5, None, "low", "high")]
    await sink.apply([write(org, "a", 1, {}, history), write(org, "a", 1, {}, history)])
    assert (await redis_client.zcard(new), await redis_client.zcard(up)) == (1, 1)
    # a new change is added, the held ones are kept once; a channel's is not counted
    history2 = [*history, _row(0.2, "email", None, "low"), _row(0.1, None, "high", "low")]
    await sink.apply([write(org, "a", 2, {}, history2)])
    assert [await redis_client.zcard(k) for k in (new, up, down)] == [1, 1, 1]
    # two contacts changing the same way at the same second are two changes
    await sink.apply([write(org, "b", 1, {}, [_row(0.1, None, "high", "low")])])
    assert await redis_client.zcard(down) == 2
    # removal takes them all away
    await sink.apply([write(org, "a", 3, None), write(org, "b", 2, None)])
    assert [await redis_client.zcard(k) for k in (new, up, down)] == [0, 0, 0]


@pytest.fixture
async def api(
    tmp_path: Path, redis_url: str, redis_client: aioredis.Redis, org: str, unique: str
) -> AsyncIterator[tuple[httpx.AsyncClient, Tokens, Tokens]]:
    settings = make_settings(
        tmp_path, redis_url=redis_url, org_timezones={org: "America/Sao_Paulo"}
    )
    tokens, other = make_tokens(settings, org), make_tokens(settings, f"oth-{unique}")
    app = create_app(settings, redis=redis_client, producer=MemoryPublisher())
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://api"
    ) as client:
        yield client, tokens, other


async def test_api_serves_the_heatmaps_and_the_change_counts(
    sink: RedisSink,
    org: str,
    api: tuple[httpx.AsyncClient, Tokens, Tokens],
) -> None:
    client, tokens, other = api
    headers = tokens.header("agent")
    await sink.apply(
        [
            write(
                org,
                "a",
                1,
                {"email": {0: 2, 167: 1}, "sms": {24 + 9: 4}},
                [_row(10, None, None, "low"), _row(2, None, "low", "high")],
                name="Ana Up",
            ),
            write(
                org,
                "b",
                1,
                {"email": {0: 1}},
                [_row(0.2, None, None, "low"), _row(0.1, "sms", "high", "low")],
                name="Bia New",
            ),
        ]
    )
    body = (await client.get(f"/v1/orgs/{org}/heatmap", headers=headers)).json()
    assert body["timezone"] == "America/Sao_Paulo" and body["window_days"] == 90
    assert set(body["channels"]) == {"sms", "email", "whatsapp"}
    email = body["channels"]["email"]
    assert email["total"] == 4 and len(email["hours"]) == 7
    assert all(len(row) == 24 for row in email["hours"])
    assert email["hours"][0][0] == 3 and email["hours"][6][23] == 1  # Mon 00h, Sun 23h
    assert body["channels"]["sms"]["hours"][1][9] == 4  # Tue 09h
    assert body["channels"]["whatsapp"] == {"total": 0, "hours": [[0] * 24] * 7}
    mine = (await client.get(f"/v1/orgs/{org}/contacts/b/heatmap", headers=headers)).json()
    assert mine["channels"]["email"]["total"] == 1 and mine["channels"]["email"]["hours"][0][0] == 1
    assert mine["channels"]["sms"]["total"] == 0

    changes = (await client.get(f"/v1/orgs/{org}/tier-changes", headers=headers)).json()
    zero = {"up": 0, "down": 0, "new": 0, "lost": 0}
    assert changes["last_24h"] == {**zero, "new": 1}  # b's sms change: not the overall tier
    assert changes["last_7d"] == {**zero, "new": 1, "up": 1}  # 10 days ago: not
    assert [(r["contact_id"], r["name"], r["tier"]) for r in changes["recent"]] == [
        ("b", "Bia New", "low"),
        ("a", "Ana Up", "high"),
    ]
    assert changes["recent"][1]["previous_tier"] == "low"
    assert changes["recent"][0]["changed_at"] == _row(0.2, None, None, "low")[0]

    # another org's token sees none of it; an unknown contact is 404
    for path in ("heatmap", "tier-changes", "contacts/a/heatmap"):
        response = await client.get(f"/v1/orgs/{org}/{path}", headers=other.header("admin"))
        assert response.status_code == 404 and "Ana" not in response.text
    missing = await client.get(f"/v1/orgs/{org}/contacts/zz/heatmap", headers=headers)
    assert missing.status_code == 404


async def test_a_contact_of_the_previous_layout_moves_to_this_one_when_written(
    sink: RedisSink, redis_client: aioredis.Redis, org: str
) -> None:
    """Layout revision 2 kept whole keys and members in the membership hash and counted the
    overview with sorted sets: the first write in this layout removes every one of them and
    counts the contact once (workers rewrite every contact when they find no sentinel of this
    revision)."""
    prefix = ks.redis_org_prefix(org)
    old_sets = {
        f"{prefix}seg:all:high": "05000|a",
        f"{prefix}all": "a",
        f"{prefix}chan:email": "a",
        f"{prefix}sub:email:subscribed": "a",
        f"{prefix}find:name": "ana souza|a",
    }
    pipe = redis_client.pipeline()
    for key, member in old_sets.items():
        pipe.zadd(key, {member: 0})
    pipe.hset(ks.redis_membership_key(org, "a"), mapping={"__v": 5, **old_sets})
    await pipe.execute()
    await sink.apply([write(org, "a", 6, {"email": {1: 1}})])
    for key in old_sets:
        if key.endswith((":all", ":chan:email", ":sub:email:subscribed")):
            assert await redis_client.exists(key) == 0, key  # the old counting sets are gone
    assert await redis_client.zrange(f"{prefix}seg:all:high", 0, -1) == [b"05000|a"]
    assert await redis_client.zrange(f"{prefix}find:name", 0, -1) == [b"ana souza|a"]
    overview = await redis_client.hgetall(ks.redis_overview_key(org))
    assert overview[b"n"] == b"1" and overview[b"email:subscribed"] == b"1"
    held = await redis_client.hgetall(ks.redis_membership_key(org, "a"))
    assert not any(field.startswith(b"em:v2:") for field in held)
    # written again: nothing moves
    await sink.apply([write(org, "a", 7, {"email": {1: 1}})])
    assert await redis_client.hgetall(ks.redis_overview_key(org)) == overview
