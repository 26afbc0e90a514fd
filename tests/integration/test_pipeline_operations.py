"""What an operator relies on: bad records never cost good ones, Redis is only a cache, and the
window rolls on its own."""

from __future__ import annotations

import random
from collections import Counter
from itertools import pairwise
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis

from counting import CountingConfig
from engagement_monitor import keyspace as ks
from tests.integration.harness import Pipeline, ago, snapshot, wait_for
from tests.integration.streamgen import engagement_stream, reference
from tests.integration.test_pipeline_exactness import _assert_exact
from tests.unit.factories import rate_tier

pytestmark = pytest.mark.integration


def bad_base(org: str, i: int) -> dict[str, Any]:
    """The fields of the i-th bad record before it is spoilt (each test spoils them its way)."""
    return {
        "event_id": f"bad-{i}",
        "org_id": org,
        "contact_id": f"c{i % 50:04d}",
        "channel": "email",
        "message_id": f"bad-m{i}",
        "occurred_at": ago(1),
    }


def _malformed(org: str, i: int) -> tuple[str, bytes, str]:
    """(topic, raw value, expected rejection code) of the i-th malformed record."""
    base = bad_base(org, i)
    kind = i % 9
    if kind == 0:
        return "open", b"{this is not json", "not_json"
    if kind == 1:
        return "click", b"[1, 2, 3]", "not_json"
    if kind == 2:
        return (
            "delivery",
            orjson.dumps({k: v for k, v in base.items() if k != "contact_id"}),
            "missing_field",
        )
    if kind == 3:
        return "reply", orjson.dumps({**base, "channel": "fax"}), "unknown_channel"
    if kind == 4:
        return "open", orjson.dumps({**base, "occurred_at": "yesterday at noon"}), "bad_timestamp"
    if kind == 5:
        return (
            "dispatch",
            orjson.dumps({**base, "occurred_at": ago(-1), "dispatch_kind": "single"}),
            "future_timestamp",
        )
    if kind == 6:
        return "click", orjson.dumps({**base, "padding": "x" * 70_000}), "oversize"
    if kind == 7:
        return (
            "open",
            orjson.dumps({k: v for k, v in base.items() if k != "message_id"}),
            "missing_field",
        )
    return "dispatch", orjson.dumps({**base, "dispatch_kind": "broadcast"}), "invalid_field"


async def test_malformed_records_go_to_dead_letters_and_cost_nothing(
    pipeline: Pipeline, redis_client: aioredis.Redis
) -> None:
    org = f"dl-{pipeline.unique}"
    good = engagement_stream(org, contacts=60, messages=5, seed=3)
    bad = [_malformed(org, i) for i in range(1000)]
    mixed: list[tuple[str, bytes | None, Any]] = list(good)
    rng = random.Random(4)
    for topic, raw, _code in bad:
        mixed.insert(rng.randrange(len(mixed) + 1), (topic, b"bad-key", raw))
    expected = reference(good, CountingConfig())

    await pipeline.start_worker()
    await pipeline.produce(mixed)

    letters = await pipeline.consume_all("dead-letters", expect=1000, timeout=120)
    assert len(letters) == 1000
    by_value = Counter(raw for _t, raw, _c in bad)
    assert Counter(r.value for r in letters) == by_value  # every record, unchanged
    codes = Counter()
    for record in letters:
        headers = {k: v.decode() for k, v in record.headers}
        assert headers["em-reason"], "a dead letter must say why"
        # In full, as read (SPEC §4), so a fixed record can be replayed to it as is.
        assert headers["em-source-topic"] in {
            pipeline.topic(t) for t in ("open", "click", "delivery", "reply", "dispatch")
        }
        assert int(headers["em-source-offset"]) >= 0
        assert int(headers["em-source-partition"]) in range(pipeline.partitions)
        assert record.key == b"bad-key"
        codes[headers["em-code"]] += 1
    assert codes == Counter(code for _t, _r, code in bad)
    reasons = {k: v.decode() for k, v in letters[0].headers}
    assert len(reasons["em-reason"]) > 10

    await _assert_exact(redis_client, expected)  # every good event counted
    # nothing else went to the dead letters
    assert len(await pipeline.consume_all("dead-letters")) == 1000


async def test_redis_flushed_while_running_gets_its_snapshots_back(
    pipeline: Pipeline, redis_client: aioredis.Redis
) -> None:
    org = f"flush-{pipeline.unique}"
    records = engagement_stream(org, contacts=50, messages=5, seed=5)
    expected = reference(records, CountingConfig())
    await pipeline.start_worker()
    await pipeline.produce(records)
    await _assert_exact(redis_client, expected)
    segments_before = sorted(await redis_client.keys(ks.redis_org_pattern(org)))
    assert segments_before

    await redis_client.flushdb()
    assert await snapshot(redis_client, org, "c0000") is None

    await _assert_exact(redis_client, expected, timeout=60)
    assert sorted(await redis_client.keys(ks.redis_org_pattern(org))) == segments_before


async def test_a_message_crossing_the_window_edge_changes_the_tier_by_expiry(
    pipeline: Pipeline, redis_client: aioredis.Redis
) -> None:
    org = f"exp-{pipeline.unique}"
    pipeline.extra_env["EM_EXPIRY_SWEEP_SECONDS"] = "1"
    await pipeline.start_worker()
    edge = 90 - 25 / 86400  # leaves the 90-day window 25 seconds from now
    base = {"org_id": org, "contact_id": "c1", "channel": "email", "message_id": "m1"}
    await pipeline.produce(
        [
            (
                "contact",
                b"",
                {
                    "event_id": "u",
                    "org_id": org,
                    "contact_id": "c1",
                    "type": "upsert",
                    "name": "Edge",
                    "occurred_at": ago(1),
                },
            ),
            (
                "dispatch",
                None,
                {**base, "event_id": "d", "occurred_at": ago(edge), "dispatch_kind": "single"},
            ),
            ("delivery", None, {**base, "event_id": "v", "occurred_at": ago(edge - 1e-5)}),
            ("open", None, {**base, "event_id": "o", "occurred_at": ago(edge - 2e-5)}),
            # c2 has no profile, list or subscription: only the message that leaves.
            (
                "dispatch",
                None,
                {
                    **base,
                    "contact_id": "c2",
                    "channel": "sms",
                    "message_id": "m2",
                    "event_id": "d2",
                    "occurred_at": ago(edge),
                    "dispatch_kind": "single",
                },
            ),
        ]
    )

    async def tier() -> Any:
        snap = await snapshot(redis_client, org, "c1")
        return snap and snap["engagement"]["tier"]

    assert await wait_for(tier, timeout=30, what="tier from the events") == "very_high"

    async def expired() -> bool:
        snap = await snapshot(redis_client, org, "c1")
        return bool(snap and snap["dispatched"]["total"] == 0)

    await wait_for(expired, timeout=60, what="the message to leave the window")
    snap = await snapshot(redis_client, org, "c1")
    assert snap is not None
    assert rate_tier(snap["engagement"]) == {"rate": None, "tier": None}
    assert snap["registration"]["name"] == "Edge"
    assert not await redis_client.zrange(ks.redis_segment_key(org, None, "very_high"), 0, -1)

    # A contact whose every message left the window stays in the monitor until it is deleted,
    # with zeros and its channel's last known status (SPEC §3).
    async def bare_expired() -> bool:
        bare = await snapshot(redis_client, org, "c2")
        return bare is None or bare["dispatched"]["total"] == 0

    await wait_for(bare_expired, timeout=30, what="c2's message to leave the window")
    bare = await snapshot(redis_client, org, "c2")
    assert bare is not None, "c2 vanished when its only message left the window"
    assert bare["dispatched"] == {"total": 0, "by_channel": {"sms": 0}}
    assert bare["channels"]["sms"]["status"] == "subscribed"
    assert rate_tier(bare["engagement"]) == {"rate": None, "tier": None}

    changes = [
        orjson.loads(r.value)
        for r in await pipeline.consume_all("tier-changes", expect=4, timeout=30)
    ]
    assert all(c["org_id"] == org and c["contact_id"] == "c1" for c in changes)  # c2: no tier
    expiries = sorted(
        (c["channel"] or "", c["previous_tier"] or "", c["tier"] or "")
        for c in changes
        if c["cause"] == "expiry"
    )
    # The window edge takes the tier away, overall and on the channel, by expiry, once each.
    assert expiries == [("", "very_high", ""), ("email", "very_high", "")]
    # Events brought it there; depending on how the records fell into batches, a scope may pass
    # through an intermediate tier first (a delivery before its open), but it ends very_high.
    for scope in ("", "email"):
        path = [c for c in changes if (c["channel"] or "") == scope and c["cause"] == "event"]
        assert path, f"no event-caused change for scope {scope!r}"
        assert path[0]["previous_tier"] is None
        assert path[-1]["tier"] == "very_high"
        assert all(a["tier"] == b["previous_tier"] for a, b in pairwise(path))
