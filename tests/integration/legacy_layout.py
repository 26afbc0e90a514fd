"""The Redis layout of the release before issue 17, frozen here to fill a Redis as it would have.

Plain concatenation of ids, exactly as `engagement_monitor/redis_layout.py` built keys up to
commit 9ae3408. Only the upgrade test uses it; nothing in the product reads these keys.
"""

from __future__ import annotations

import redis.asyncio as aioredis

from engagement_monitor import redis_layout as rl

RATE_SCALE = 10000


def snapshot_key(org_id: str, contact_id: str) -> str:
    return f"em:{{{org_id}}}:snap:{contact_id}"


def membership_key(org_id: str, contact_id: str) -> str:
    return f"em:{{{org_id}}}:mem:{contact_id}"


def segment_key(org_id: str, scope: str | None, tier: str) -> str:
    return f"em:{{{org_id}}}:seg:{scope or 'all'}:{tier}"


def segment_member(contact_id: str, rate: float | None) -> str:
    hundredths = round((rate or 0.0) * 100)
    return f"{RATE_SCALE - hundredths:05d}|{contact_id}"


def sentinel_key(app_id: str, partition: int) -> str:
    return f"em:meta:{app_id}:p{partition}"


async def write_contact(
    client: aioredis.Redis,
    org_id: str,
    contact_id: str,
    version: int,
    snapshot: bytes,
    tiers: dict[str | None, tuple[str, float | None]],
) -> None:
    """What that release's worker wrote for one contact (same Lua script, old keys)."""
    args: list[bytes | str | int] = [version, snapshot]
    for scope, (tier, rate) in tiers.items():
        args += [segment_key(org_id, scope, tier), segment_member(contact_id, rate)]
    upsert = client.register_script(rl.UPSERT_LUA)
    await upsert(
        keys=[snapshot_key(org_id, contact_id), membership_key(org_id, contact_id)], args=args
    )
