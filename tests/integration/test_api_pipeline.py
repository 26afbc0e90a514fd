"""Write commands followed through the real pipeline: API -> Kafka -> worker -> Redis -> API.

The API never writes a snapshot; each assertion waits until the worker has applied the command
and the monitor (read through the API) shows it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import orjson
import pytest
import redis.asyncio as aioredis

from read_api.app import create_app
from read_api.commands import KafkaPublisher
from tests.integration.harness import Pipeline, ago, wait_for
from tests.read_api.support import clear_org, make_settings, make_tokens
from tests.unit.factories import rate_tier

pytestmark = pytest.mark.integration


def seed_events(org: str, contact: str) -> list[tuple[str, bytes, dict[str, Any]]]:
    key = f"{org}:{contact}".encode()
    base = {"org_id": org, "contact_id": contact}
    return [
        (
            "contact",
            key,
            {
                **base,
                "event_id": f"{contact}-u",
                "type": "upsert",
                "occurred_at": ago(5),
                "name": "Ana Souza",
                "phone": "+5511999990000",
                "origin": {"type": "campaign", "campaign": "Black Friday", "channel": "whatsapp"},
            },
        ),
        *(
            (
                topic,
                key,
                {
                    **base,
                    "event_id": f"{contact}-{topic}-{channel}",
                    "channel": channel,
                    "message_id": f"m-{channel}",
                    "occurred_at": ago(2),
                    **({"dispatch_kind": "single"} if topic == "dispatch" else {}),
                },
            )
            for channel in ("email", "whatsapp")
            for topic in ("dispatch", "delivery", "open")
        ),
    ]


async def test_write_commands_reach_the_snapshot(
    pipeline: Pipeline, redis_client: aioredis.Redis
) -> None:
    org = f"api-{pipeline.unique}"
    settings = make_settings(
        pipeline.tmp,
        kafka_bootstrap=pipeline.bootstrap,
        redis_url=pipeline.redis_url,
        topic_prefix=pipeline.prefix,
    )
    tokens = make_tokens(settings, org)
    await pipeline.start_worker()
    await pipeline.produce(seed_events(org, "c1"))

    publisher = KafkaPublisher(pipeline.bootstrap)
    await publisher.start()
    app = create_app(settings, redis=redis_client, producer=publisher)
    base = f"/v1/orgs/{org}/contacts/c1"
    headers = tokens.header("operator")
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://api", headers=headers
        ) as api:

            async def monitor() -> dict[str, Any] | None:
                response = await api.get(f"{base}/monitor")
                return response.json() if response.status_code == 200 else None

            async def until(what: str, check: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
                async def probe() -> dict[str, Any] | None:
                    snap = await monitor()
                    return snap if snap is not None and check(snap) else None

                result: dict[str, Any] = await wait_for(probe, timeout=60, what=what)
                return result

            async def segment_ids(tier: str, channel: str | None = None) -> list[str]:
                params = {"tier": tier, **({"channel": channel} if channel else {})}
                page = (await api.get(f"/v1/orgs/{org}/segments", params=params)).json()
                return [item["contact_id"] for item in page["items"]]

            # The seed's records may land in different batches: wait for all of them.
            snap = await until(
                "the seeded contact",
                lambda s: (
                    s["dispatched"]["total"] == 2
                    and s["engagement"]["rate"] is not None
                    and sum(ch["opened"] for ch in s["channels"].values()) == 2
                ),
            )
            assert rate_tier(snap["engagement"]) == {"rate": 100.0, "tier": "very_high"}
            assert snap["registration"]["origin"]["label"] == "Campaign Black Friday - WhatsApp"
            assert "c1" in await segment_ids("very_high")
            assert "c1" in await segment_ids("very_high", "email")

            async def accepted(call: Awaitable[httpx.Response]) -> dict[str, Any]:
                response = await call
                assert response.status_code == 202, response.text
                body: dict[str, Any] = response.json()
                return body

            # include in a list
            await accepted(api.put(f"{base}/lists/vip", json={"name": "VIP customers"}))
            snap = await until("list included", lambda s: bool(s["lists"]))
            assert snap["lists"] == [{"list_id": "vip", "name": "VIP customers"}]

            # unsubscribe from a channel: the contact stays, with the label
            await accepted(api.post(f"{base}/channels/email/unsubscribe"))
            snap = await until(
                "email unsubscribed", lambda s: s["channels"]["email"]["status"] == "unsubscribed"
            )
            assert snap["channels"]["whatsapp"]["status"] == "subscribed"
            assert snap["dispatched"]["total"] == 2

            # edit registration data
            await accepted(api.patch(base, json={"name": "Ana S. Lima", "email": "ana@ex.com"}))
            snap = await until(
                "registration edited", lambda s: s["registration"]["name"] == "Ana S. Lima"
            )
            assert snap["registration"]["email"] == "ana@ex.com"
            assert snap["registration"]["phone"] == "+5511999990000"  # untouched

            # SPEC §7.4: the tier changes of the window, newest first, as they were published
            history = (await api.get(f"{base}/tier-history")).json()["items"]
            published = [
                orjson.loads(r.value)
                for r in await pipeline.consume_all("tier-changes")
                if orjson.loads(r.value)["contact_id"] == "c1"
                and orjson.loads(r.value)["org_id"] == org
            ]
            assert history and {h["channel"] for h in history} >= {None, "email"}
            assert history == [
                {
                    k: p[k]
                    for k in ("changed_at", "channel", "previous_tier", "tier", "rate", "cause")
                }
                for p in reversed(published)
            ]
            overall = [h for h in history if h["channel"] is None]
            assert overall[-1]["previous_tier"] is None and overall[0]["tier"] == "very_high"

            # SPEC §7.4: the worker keeps the org's views in the same landing as the snapshot
            overview = (await api.get(f"/v1/orgs/{org}/overview")).json()
            assert overview["contacts"] == 1
            assert overview["tiers"]["overall"] == {
                "no_engagement": 0,
                "low": 0,
                "high": 0,
                "very_high": 1,
                "none": 0,
            }
            assert overview["subscriptions"]["email"] == {"subscribed": 0, "unsubscribed": 1}
            assert overview["subscriptions"]["whatsapp"] == {"subscribed": 1, "unsubscribed": 0}
            assert overview["tiers"]["by_channel"]["sms"]["none"] == 0  # not shown: not counted

            # the landing's heatmaps are the histogram the best send times come from, and the
            # org's is the sum of its contacts' (one contact here: the same)
            mine = (await api.get(f"{base}/heatmap")).json()["channels"]
            week = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
            for channel, best in snap["best_send_times"].items():
                for top in best["top_hours"]:
                    row = mine[channel]["hours"][week.index(top["weekday"])]
                    assert row[top["hour"]] == top["interactions"]
            assert sum(c["total"] for c in mine.values()) == 2  # two messages opened
            org_heat = (await api.get(f"/v1/orgs/{org}/heatmap")).json()["channels"]
            assert org_heat == mine
            # and the tier changes just published are the org's changes of the last 24 h
            recent = (await api.get(f"/v1/orgs/{org}/tier-changes")).json()
            day = recent["last_24h"]
            overall_changes = [h for h in history if h["channel"] is None]
            assert sum(day.values()) == len(overall_changes) and day["new"] == 1
            assert [r["contact_id"] for r in recent["recent"]] == ["c1"] * len(overall_changes)
            assert recent["recent"][0]["tier"] == "very_high"

            async def found(q: str) -> list[str]:
                page = (await api.get(f"/v1/orgs/{org}/contacts", params={"q": q})).json()
                return [item["contact_id"] for item in page["items"]]

            assert await found("ANA S") == ["c1"]  # the new name, case-insensitive
            assert await found("Ana Souza") == []  # the old one is gone from the index
            assert await found("ana@ex") == ["c1"] and await found("5511 9999") == ["c1"]

            # remove from the list
            await accepted(api.delete(f"{base}/lists/vip"))
            await until("list removed", lambda s: s["lists"] == [])

            # ask for a message: a send request for the messaging pipeline, not a snapshot change
            sent = await accepted(
                api.post(f"{base}/messages", json={"channel": "sms", "text": "Hi"})
            )
            records = await pipeline.consume_all("send-requests", expect=1, timeout=30)
            request = orjson.loads(records[0].value)
            assert records[0].key == f"{org}:c1".encode()
            assert request["request_id"] == sent["request_id"]
            assert request["text"] == "Hi" and request["requested_by"] == f"operator@{org}"

            # delete: gone from the monitor and from every segment
            await accepted(api.delete(base))

            async def gone() -> bool:
                return (await api.get(f"{base}/monitor")).status_code == 404

            await wait_for(gone, timeout=60, what="contact deleted")
            for tier in ("no_engagement", "low", "high", "very_high"):
                for channel in (None, "email", "whatsapp", "sms"):
                    assert "c1" not in await segment_ids(tier, channel)
            overview = (await api.get(f"/v1/orgs/{org}/overview")).json()
            assert overview["contacts"] == 0 and overview["subscriptions"]["email"] == {
                "subscribed": 0,
                "unsubscribed": 0,
            }
            assert await found("ana") == []
            # its interactions leave the org's heatmap with it; its changes leave the counts
            org_heat = (await api.get(f"/v1/orgs/{org}/heatmap")).json()["channels"]
            assert all(c["total"] == 0 for c in org_heat.values())
            recent = (await api.get(f"/v1/orgs/{org}/tier-changes")).json()
            assert recent["recent"] == [] and sum(recent["last_7d"].values()) == 0
            # and further writes to it are refused like any unknown contact
            assert (await api.put(f"{base}/lists/vip")).status_code == 404
    finally:
        await publisher.stop()
        await clear_org(redis_client, org)
