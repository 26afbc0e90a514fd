"""A flood of hostile records costs nothing: every bad one is a dead letter with its reason, every
good one is counted, and the worker's memory stays flat.

10,000 malformed records of every kind a producer bug or an attacker can send (not JSON at all,
binary garbage, tombstones, wrong types, huge values and ids, deep nesting, control characters,
timestamps far in the future or without an offset, the shape of another topic, unknown tags)
are interleaved with a normal stream under random binary keys. Records dated before 1970 are
valid, only too old to count: they are ignored, not dead letters.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis

from bench.common import tree_rss_mb
from counting import CountingConfig
from tests.integration.harness import Pipeline, wait_for
from tests.integration.streamgen import engagement_stream, reference
from tests.integration.test_pipeline_exactness import _assert_exact
from tests.integration.test_pipeline_operations import bad_base

pytestmark = pytest.mark.integration

FLOOD = 10_000
Bad = tuple[str, bytes | None, str | None]  # topic, value, expected code (None: not a letter)


def _families(org: str) -> list[Callable[[int], Bad]]:
    def json(topic: str, code: str | None, **changes: Any) -> Callable[[int], Bad]:
        def make(i: int) -> Bad:
            value = {**bad_base(org, i), **changes}
            return topic, orjson.dumps({k: v for k, v in value.items() if v is not ...}), code

        return make

    def raw(topic: str, value: bytes | None, code: str) -> Callable[[int], Bad]:
        return lambda i: (topic, value, code)

    rng = random.Random(7)
    return [
        raw("open", b'{"event_id": "x", "org_id": ', "not_json"),  # truncated
        raw("click", b"[1, 2, 3]", "not_json"),
        raw("delivery", b"42", "not_json"),
        raw("reply", b'"just a string"', "not_json"),
        raw("dispatch", b"null", "not_json"),
        raw("open", bytes(rng.getrandbits(8) for _ in range(300)), "not_json"),  # binary
        raw("click", b"", "not_json"),
        raw("delivery", None, "not_json"),  # a tombstone on an input topic
        raw("open", b"[" * 2000 + b"]" * 2000, "not_json"),  # deeper than JSON parsers go
        raw("open", b'{"a":' * 300 + b"1" + b"}" * 300, "missing_field"),  # deep, no fields
        raw("reply", b'{"event_id": NaN}', "not_json"),
        json("open", "invalid_field", org_id=12345),
        json("click", "invalid_field", contact_id=["a", "b"]),
        json("delivery", "invalid_field", event_id={"nested": True}),
        json("open", "bad_timestamp", occurred_at=1767225600),  # a unix time
        json("open", "bad_timestamp", occurred_at="2026-01-01T00:00:00"),  # no offset
        json("reply", "bad_timestamp", occurred_at="yesterday at noon"),
        json(
            "dispatch",
            "future_timestamp",
            occurred_at="2999-01-01T00:00:00Z",
            dispatch_kind="single",
        ),
        json("open", "missing_field", message_id=...),
        json("dispatch", "missing_field", dispatch_kind=...),
        json("click", "unknown_channel", channel="fax"),
        json("click", "invalid_field", channel=7),
        json("open", "invalid_field", contact_id="tab\there"),  # a control character
        json("open", "invalid_field", contact_id="x" * 500),  # longer than an id may be
        json("delivery", "invalid_field", org_id=""),
        json("dispatch", "invalid_field", dispatch_kind="broadcast"),
        json("click", "invalid_field", url="https://example.com/" + "p" * 5000),
        json("click", "oversize", padding="x" * 70_000),
        # The shape of another topic: a contact upsert sent to `dispatch`.
        json("dispatch", "missing_field", channel=..., message_id=..., type="upsert", name="A"),
        json("contact", "invalid_field", type="merge"),  # an unknown tag
        json("contact", "missing_field", type="list_added"),  # no list_id
        # Valid, but from before 1970: far older than the window, so ignored (not an error).
        json("open", None, occurred_at="1969-07-20T20:17:40Z"),
        json("dispatch", None, occurred_at="1901-01-01T00:00:00+00:00", dispatch_kind="single"),
    ]


async def test_a_flood_of_hostile_records_costs_nothing(
    pipeline: Pipeline, redis_client: aioredis.Redis
) -> None:
    org = f"flood-{pipeline.unique}"
    good = engagement_stream(org, contacts=100, messages=5, seed=41)
    families = _families(org)
    bad = [families[i % len(families)](i) for i in range(FLOOD)]
    rng = random.Random(42)
    mixed: list[tuple[str, bytes | None, Any]] = list(good)
    for topic, value, _code in bad:
        key = rng.choice([None, bytes(rng.getrandbits(8) for _ in range(16)), b"\xff\xfe"])
        if value is None and key is None:
            key = b"\x00tombstone"  # Kafka takes no record without both
        mixed.insert(rng.randrange(len(mixed) + 1), (topic, key, value))

    worker = await pipeline.start_worker()
    assert worker.proc is not None
    await pipeline.produce(good[:50])  # warm up: imports, caches, first checkpoints
    await wait_for(lambda: _dead_or_counted(worker), what="the worker counting")
    before = tree_rss_mb(worker.proc.pid)

    await pipeline.produce(mixed)
    letters_expected = sum(1 for _t, _v, code in bad if code is not None)
    letters = await pipeline.consume_all("dead-letters", expect=letters_expected, timeout=180)
    await _assert_exact(redis_client, reference(good, CountingConfig()))  # every good one

    assert len(letters) == letters_expected
    codes: Counter[str] = Counter()
    for record in letters:
        headers = {k: v.decode() for k, v in record.headers}
        assert len(headers["em-reason"]) > 10, headers  # a reason a person can act on
        assert headers["em-source-topic"].startswith(pipeline.prefix)
        codes[headers["em-code"]] += 1
    assert codes == Counter(code for _t, _v, code in bad if code is not None)
    assert worker.proc.poll() is None, worker.tail()
    growth = tree_rss_mb(worker.proc.pid) - before
    assert growth < 64, f"the worker grew by {growth:.0f} MB through the flood"


async def _dead_or_counted(worker: Any) -> bool:
    metrics = await worker.metrics()
    return any(
        line.startswith("em_records_in_total{") and not line.endswith(" 0.0")
        for line in metrics.splitlines()
    )
