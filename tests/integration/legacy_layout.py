"""The Redis layout of the release before issue 17, frozen here to fill a Redis as it would have.

Plain concatenation of ids, exactly as `engagement_monitor/redis_layout.py` built keys up to
commit 9ae3408. Only the upgrade test uses it; nothing in the product reads these keys.
"""

from __future__ import annotations

import redis.asyncio as aioredis

RATE_SCALE = 10000

# That release's per-contact script (engagement_monitor/redis_layout.py at 9ae3408).
UPSERT_LUA = """
local held = tonumber(redis.call('HGET', KEYS[2], '__v') or '-1')
if held > tonumber(ARGV[1]) then return 0 end
local keep = {}
for i = 3, #ARGV, 2 do keep[ARGV[i]] = ARGV[i + 1] end
local old = redis.call('HGETALL', KEYS[2])
for i = 1, #old, 2 do
  if old[i] ~= '__v' and keep[old[i]] ~= old[i + 1] then
    redis.call('ZREM', old[i], old[i + 1])
  end
end
redis.call('DEL', KEYS[2])
for i = 3, #ARGV, 2 do
  redis.call('ZADD', ARGV[i], 0, ARGV[i + 1])
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
end
redis.call('HSET', KEYS[2], '__v', ARGV[1])
redis.call('SET', KEYS[1], ARGV[2])
return 1
"""


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
    upsert = client.register_script(UPSERT_LUA)
    await upsert(
        keys=[snapshot_key(org_id, contact_id), membership_key(org_id, contact_id)], args=args
    )
