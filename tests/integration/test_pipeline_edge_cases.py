"""The counting core's edge cases, end to end: records on the topics, figures in the Redis snapshot.

Each contact carries one rule; the records go through the real broker and worker, and the
snapshot, the segments and the dispatch-status topic are read back.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis

from engagement_monitor import keyspace as ks
from tests.integration.harness import Pipeline, ago, snapshot, wait_for
from tests.unit.factories import rate_tier

pytestmark = pytest.mark.integration

Check = Callable[[dict[str, Any] | None], None]
_ids = itertools.count()

# Nothing delivered yet: no rate, no tier, and the counts say why (SPEC §7.3).
NO_ENGAGEMENT_YET = {
    "rate": None,
    "tier": None,
    "engaged": 0,
    "delivered": 0,
    "last_engaged_at": None,
}


class Scenario:
    def __init__(self, org: str) -> None:
        self.org = org
        self.built_at = datetime.now(UTC)
        self.records: list[tuple[str, bytes | None, dict[str, Any]]] = []
        self.checks: dict[str, Check] = {}

    def send(self, topic: str, contact: str, *, key: bool = True, **fields: Any) -> str:
        event_id = fields.pop("event_id", f"e{next(_ids)}")
        value = {"event_id": event_id, "org_id": self.org, "contact_id": contact, **fields}
        self.records.append((topic, f"{self.org}:{contact}".encode() if key else None, value))
        return event_id

    def message(self, contact: str, channel: str, mid: str, days: float, *events: str) -> None:
        base = {"channel": channel, "message_id": mid}
        if "dispatch" in events:
            self.send("dispatch", contact, **base, occurred_at=ago(days), dispatch_kind="single")
        for n, topic in enumerate(e for e in events if e != "dispatch"):
            self.send(
                topic, contact, key=n % 2 == 0, **base, occurred_at=ago(days - 0.01 * (n + 1))
            )


def ch(snap: dict[str, Any] | None, channel: str) -> dict[str, Any]:
    assert snap is not None
    figures: dict[str, Any] = snap["channels"][channel]
    return figures


def build(org: str) -> Scenario:
    """One scenario per rule, read top to bottom."""
    s = Scenario(org)

    # 1/5 engaged = 20.00 exactly: the lower edge of "low"
    for i in range(5):
        s.message("low", "email", f"m{i}", 5, "dispatch", "delivery", *(["open"] if i == 0 else []))

    def low(snap: dict[str, Any] | None) -> None:
        assert snap is not None
        assert rate_tier(snap["engagement"]) == {"rate": 20.0, "tier": "low"}
        assert ch(snap, "email")["rates"] == {
            "delivery": 100.0,
            "open": 20.0,
            "click": 0.0,
            "response": None,
            "bounce": 0.0,
            "complaint": 0.0,
        }

    s.checks["low"] = low

    # 2/3 = 66.67 (half-up) -> high; 3/4 = 75.00 -> very_high; 1/6 = 16.67 -> no_engagement
    for i in range(3):
        s.message("high", "whatsapp", f"m{i}", 4, "dispatch", "delivery", *(["open"] if i else []))
    s.checks["high"] = lambda snap: _eq(
        snap and rate_tier(snap["engagement"]), {"rate": 66.67, "tier": "high"}
    )
    for i in range(4):
        s.message("vhigh", "email", f"m{i}", 4, "dispatch", "delivery", *(["open"] if i else []))

    def vhigh(snap: dict[str, Any] | None) -> None:
        assert snap is not None
        engagement = dict(snap["engagement"])
        # "3 of 4 delivered messages engaged" (SPEC §7.3); the opens are dated 4 - 0.02 days
        # before the scenario was built (the last event of each message), to the second
        last = datetime.fromisoformat(engagement.pop("last_engaged_at"))
        expected = s.built_at - timedelta(days=4 - 0.02)
        assert abs((last - expected).total_seconds()) <= 2, (last, expected)
        assert engagement == {"rate": 75.0, "tier": "very_high", "engaged": 3, "delivered": 4}

    s.checks["vhigh"] = vhigh
    for i in range(6):
        s.message("none", "sms", f"m{i}", 3, "dispatch", "delivery", *(["click"] if i == 0 else []))

    def none(snap: dict[str, Any] | None) -> None:
        assert snap is not None
        assert rate_tier(snap["engagement"]) == {"rate": 16.67, "tier": "no_engagement"}
        assert ch(snap, "sms")["rates"]["open"] is None  # SMS tracks no opens

    s.checks["none"] = none

    # 89 days old counts, 91 days old does not
    s.message("window", "email", "recent", 89, "dispatch", "delivery", "open")
    s.message("window", "email", "old", 91, "dispatch", "delivery", "open")
    s.checks["window"] = lambda snap: _eq(
        (ch(snap, "email")["dispatched"], ch(snap, "email")["opened"]), (1, 1)
    )

    # an open on SMS is counted as engagement, but SMS has no open rate
    s.message("smsopen", "sms", "m1", 2, "dispatch", "delivery", "open")
    s.checks["smsopen"] = lambda snap: _eq(
        (ch(snap, "sms")["rates"]["open"], snap and snap["engagement"]["rate"]), (None, 100.0)
    )

    # a click implies delivery, and an open on channels that track opens (not on SMS)
    s.message("click", "email", "e1", 2, "dispatch", "click")
    s.message("click", "sms", "s1", 2, "dispatch", "click")

    def click(snap: dict[str, Any] | None) -> None:
        email, sms = ch(snap, "email"), ch(snap, "sms")
        assert (email["delivered"], email["opened"], email["clicked"]) == (1, 1, 1)
        assert (sms["delivered"], sms["opened"], sms["clicked"]) == (1, 0, 1)

    s.checks["click"] = click

    # a reply implies delivery (and an open on WhatsApp)
    s.message("reply", "whatsapp", "w1", 2, "dispatch", "reply")
    s.checks["reply"] = lambda snap: _eq(
        tuple(ch(snap, "whatsapp")[k] for k in ("delivered", "opened", "replied")), (1, 1, 1)
    )

    # the same open twice, and one record sent twice with the same event_id
    s.message("dupes", "email", "m1", 2, "dispatch", "delivery", "open", "open")
    s.records.append(s.records[-1])
    s.checks["dupes"] = lambda snap: _eq(
        (ch(snap, "email")["delivered"], ch(snap, "email")["opened"]), (1, 1)
    )

    # an open that arrives before its dispatch waits for it
    s.send("open", "early", channel="email", message_id="m1", occurred_at=ago(1.9))
    s.send("delivery", "early", key=False, channel="email", message_id="m1", occurred_at=ago(1.95))
    s.send(
        "dispatch",
        "early",
        channel="email",
        message_id="m1",
        occurred_at=ago(2),
        dispatch_kind="automated",
    )
    s.checks["early"] = lambda snap: _eq(
        (ch(snap, "email")["dispatched"], ch(snap, "email")["opened"]), (1, 1)
    )

    # unsubscribe, then a dispatch: sending_error, still dispatched, never delivered
    s.send("unsubscribe", "unsub", channel="email", occurred_at=ago(10))
    s.message("unsub", "email", "m1", 5, "dispatch", "delivery", "open")

    def unsub(snap: dict[str, Any] | None) -> None:
        email = ch(snap, "email")
        assert email["status"] == "unsubscribed"
        assert (email["dispatched"], email["sending_errors"], email["delivered"]) == (1, 1, 0)
        assert rate_tier(email["engagement"]) == {"rate": None, "tier": None}

    s.checks["unsub"] = unsub

    # delete, then events dated before the deletion: gone for good
    s.message("deleted", "email", "m1", 5, "dispatch", "delivery", "open")
    s.send("contact", "deleted", type="delete", occurred_at=ago(3))
    s.message("deleted", "email", "m2", 4, "dispatch", "delivery")
    s.checks["deleted"] = lambda snap: _eq(snap, None)
    # ... while events dated after it start a new contact
    s.message("reborn", "email", "m1", 5, "dispatch", "delivery", "open")
    s.send("contact", "reborn", type="delete", occurred_at=ago(3))
    s.message("reborn", "sms", "m2", 1, "dispatch")
    s.checks["reborn"] = lambda snap: _eq(
        (snap and snap["dispatched"], snap and snap["engagement"]),
        ({"total": 1, "by_channel": {"sms": 1}}, NO_ENGAGEMENT_YET),
    )

    # no delivery at all: null rate and tier
    s.message("nodelivery", "whatsapp", "m1", 1, "dispatch")
    s.checks["nodelivery"] = lambda snap: _eq(snap and snap["engagement"], NO_ENGAGEMENT_YET)

    # SPEC §7.1: a privacy proxy's open, arriving before its delivery, proves delivery only
    second = 1 / 86_400
    s.send(
        "open",
        "machine",
        channel="email",
        message_id="m1",
        occurred_at=ago(2 - 3 * second),
        machine=True,
    )
    s.send(
        "dispatch",
        "machine",
        channel="email",
        message_id="m1",
        occurred_at=ago(2),
        dispatch_kind="single",
    )
    s.send("delivery", "machine", channel="email", message_id="m1", occurred_at=ago(2 - second))

    def machine(snap: dict[str, Any] | None) -> None:
        email = ch(snap, "email")
        assert (email["delivered"], email["opened"], email["machine_opened"]) == (1, 0, 1)
        assert email["engagement"] == {
            **NO_ENGAGEMENT_YET,
            "rate": 0.0,
            "tier": "no_engagement",
            "delivered": 1,
        }

    s.checks["machine"] = machine

    # a link scanner's click half a second after the delivery, then the person's an hour later
    base = {"channel": "email", "message_id": "m1"}
    s.send("dispatch", "scanned", **base, occurred_at=ago(2), dispatch_kind="single")
    s.send("click", "scanned", **base, occurred_at=ago(2 - 1.5 * second))
    s.send("click", "scanned", **base, occurred_at=ago(2 - 1.5 * second), bot=True)
    s.send("delivery", "scanned", **base, occurred_at=ago(2 - second))
    s.send("click", "scanned", key=False, **base, occurred_at=ago(2 - 3600 * second))

    def scanned(snap: dict[str, Any] | None) -> None:
        email = ch(snap, "email")
        assert (email["clicked"], email["bot_clicked"], email["opened"]) == (1, 1, 1)
        last = datetime.fromisoformat(email["engagement"]["last_engaged_at"])
        expected = s.built_at - timedelta(days=2 - 3600 * second)  # the person's click
        assert abs((last - expected).total_seconds()) <= 2, (last, expected)

    s.checks["scanned"] = scanned

    # SPEC §7.2: a soft bounce followed by a delivery is delivered; a hard bounce is bounced
    s.message("bounced", "sms", "m1", 3, "dispatch", "bounce", "delivery")
    s.records[-2][2]["kind"] = "soft"
    s.message("bounced", "sms", "m2", 3, "dispatch", "bounce")
    s.records[-1][2].update(kind="hard", reason="Unknown subscriber")

    def bounced(snap: dict[str, Any] | None) -> None:
        sms = ch(snap, "sms")
        figures = tuple(sms[k] for k in ("dispatched", "delivered", "bounced", "hard_bounced"))
        assert figures == (2, 1, 1, 1)
        assert (sms["rates"]["bounce"], sms["rates"]["delivery"]) == (50.0, 50.0)

    s.checks["bounced"] = bounced

    # a complaint unsubscribes the channel as of its time: a dispatch dated after it, arriving
    # after it, is a sending error; the complained message itself arrives last
    s.send("complaint", "spam", channel="email", message_id="m1", occurred_at=ago(3))
    s.send(
        "dispatch",
        "spam",
        channel="email",
        message_id="m2",
        occurred_at=ago(2),
        dispatch_kind="automated",
    )
    s.send(
        "dispatch",
        "spam",
        channel="email",
        message_id="m1",
        occurred_at=ago(4),
        dispatch_kind="single",
    )

    def spam(snap: dict[str, Any] | None) -> None:
        email = ch(snap, "email")
        assert email["status"] == "unsubscribed"
        figures = tuple(
            email[k] for k in ("dispatched", "sending_errors", "delivered", "complained")
        )
        assert figures == (2, 1, 1, 1)
        assert email["rates"]["complaint"] == 100.0

    s.checks["spam"] = spam

    # every origin kind renders its label exactly
    origins = {
        "o_app": ({"type": "app", "app": "Omie"}, "Omie"),
        "o_spec": (
            {"type": "app_spec", "app": "Facebook Leads", "spec": "Page Test 1 Client A"},
            "Facebook Leads - Page Test 1 Client A",
        ),
        "o_campaign": (
            {"type": "campaign", "campaign": "Black Friday", "channel": "whatsapp"},
            "Campaign Black Friday - WhatsApp",
        ),
        "o_manual": ({"type": "manual_import"}, "Manual import"),
        "o_api": ({"type": "api"}, "API"),
        "o_csv": ({"type": "csv", "file": "leads.csv"}, "CSV Import - leads.csv"),
        "o_direct": (
            {"type": "direct", "channel": "whatsapp", "account": "WhatsApp Business Credential"},
            "WhatsApp - WhatsApp Business Credential",
        ),
        "o_webchat": ({"type": "direct", "channel": "webchat"}, "Webchat"),
        "o_bot": (
            {
                "type": "chatbot",
                "channel": "whatsapp",
                "account": "Credential X",
                "flow": "Bot Flow Name",
            },
            "WhatsApp - Credential X - Bot Flow Name",
        ),
        "o_botweb": (
            {"type": "chatbot", "channel": "webchat", "flow": "Bot Flow Name"},
            "Webchat - Bot Flow Name",
        ),
    }
    for contact, (origin, label) in origins.items():
        s.send(
            "contact",
            contact,
            type="upsert",
            occurred_at=ago(1),
            name=contact,
            phone="+5511999990000",
            origin=origin,
        )
        s.checks[contact] = _origin_check(label)
    return s


def _origin_check(label: str) -> Check:
    def check(snap: dict[str, Any] | None) -> None:
        assert snap is not None
        assert snap["registration"]["origin"]["label"] == label
        assert snap["registration"]["phone"] == "+5511999990000"

    return check


def _eq(got: Any, expected: Any) -> None:
    assert got == expected, f"{got!r} != {expected!r}"


async def test_edge_cases_end_to_end(pipeline: Pipeline, redis_client: aioredis.Redis) -> None:
    org = f"edge-{pipeline.unique}"
    scenario = build(org)
    await pipeline.start_worker()
    await pipeline.produce(scenario.records)

    async def all_pass() -> list[str]:
        failing = []
        for contact, check in scenario.checks.items():
            try:
                check(await snapshot(redis_client, org, contact))
            except (AssertionError, KeyError, TypeError) as exc:
                failing.append(f"{contact}: {exc}")
        return failing

    async def settled() -> bool:
        return not await all_pass()

    try:
        await wait_for(settled, timeout=60, interval=0.5, what="every edge case")
    except AssertionError:
        raise AssertionError("\n".join(await all_pass())) from None

    # segments: the tiers are indexed, the deleted contact is in none of them
    low_members = await redis_client.zrange(ks.redis_segment_key(org, None, "low"), 0, -1)
    assert [ks.parse_member(m.decode()) for m in low_members] == [("low", 20.0)]
    for tier in ("no_engagement", "low", "high", "very_high"):
        members = await redis_client.zrange(ks.redis_segment_key(org, None, tier), 0, -1)
        assert not any(m.decode().endswith("|deleted") for m in members)

    # the sending error is told to the messaging pipeline
    statuses = [orjson.loads(r.value) for r in await pipeline.consume_all("dispatch-status")]
    assert {
        "org_id": org,
        "contact_id": "unsub",
        "channel": "email",
        "message_id": "m1",
        "status": "sending_error",
    } in statuses
    # ... and so is the dispatch made after a spam complaint (SPEC §7.2)
    spam = [s for s in statuses if s["contact_id"] == "spam"]
    assert [(s["message_id"], s["channel"]) for s in spam] == [("m2", "email")]


async def test_org_ids_with_colons_never_share_a_contact(
    pipeline: Pipeline, redis_client: aioredis.Redis
) -> None:
    """`a:b` + `c` and `a` + `b:c` have the same record key (SPEC §2 allows `:` in both ids):
    they are still two contacts, in two orgs, each with only its own messages."""
    plain = f"colon-{pipeline.unique}"
    colon = f"{plain}:eu"
    records = []
    for org, contact, days in ((colon, "c1", 3), (plain, "eu:c1", 2)):
        for topic, extra in (("dispatch", {"dispatch_kind": "single"}), ("delivery", {})):
            value = {
                "event_id": f"{org}/{contact}/{topic}",
                "org_id": org,
                "contact_id": contact,
                "channel": "sms",
                "message_id": f"{org}/{contact}",
                "occurred_at": ago(days),
                **extra,
            }
            records.append((topic, f"{org}:{contact}".encode(), value))
    assert records[0][1] == records[2][1]  # one record key for both contacts
    await pipeline.start_worker()
    await pipeline.produce(records)

    async def both() -> bool:
        snaps = [
            await snapshot(redis_client, colon, "c1"),
            await snapshot(redis_client, plain, "eu:c1"),
        ]
        return all(s is not None and s["channels"]["sms"]["delivered"] == 1 for s in snaps)

    await wait_for(both, timeout=60, interval=0.5, what="both contacts")
    for org, contact in ((colon, "c1"), (plain, "eu:c1")):
        snap = await snapshot(redis_client, org, contact)
        assert snap is not None
        assert (snap["org_id"], snap["contact_id"]) == (org, contact)
        assert snap["dispatched"]["total"] == 1
