"""The Redis layout shared by the worker (writer) and the API (reader). Redis is a cache of the
tables: everything here can be rebuilt by the worker, so nothing here is the truth.

Keys carry the org in a hash tag (`{org}`) so that one org's keys share a Redis Cluster slot and
the per-contact Lua scripts stay single-slot. Every id in a key is escaped so that keys are an
injective function of their ids; the key functions live in ``engagement_monitor.keyspace``, the only
module that builds keys from ids.

| key | type | holds |
|---|---|---|
| `em:v2:{<org>}:snap:<contact>` | string | the snapshot JSON (SPEC §4) |
| `em:v2:{<org>}:seg:<scope>:<tier>` | sorted set, scores 0 | members `<inverted rate>|<contact>` |
| `em:v2:{<org>}:mem:<contact>` | hash | segment key -> member, so updates remove old ones |
| `em:v2:meta:<app>:p<n>` | string | sentinel: partition n's snapshots are present |

Segment members sort lexicographically: `<inverted rate>` is `10000 - rate in hundredths`,
zero-padded, so a page lists the most engaged contacts first and a cursor is simply the last
member (exclusive range), stable under concurrent writes.
"""

from __future__ import annotations

VERSION_FIELD = "__v"

# Replace one contact's snapshot and segment memberships atomically, unless Redis already holds
# a newer version (a late write from a worker that lost the partition in a rebalance). Redis's
# own record of the old memberships decides what to remove, so a replay after a crash never
# leaves a stale member. KEYS: snapshot, membership hash.
# ARGV: version, snapshot JSON, then pairs (segment key, member).
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

# Remove a contact everywhere (deletion, SPEC §3), unless Redis holds a newer version. The
# membership hash keeps only the version, for a day, so a late older write cannot resurrect it.
# KEYS: snapshot, membership hash. ARGV: version.
DELETE_LUA = """
local held = tonumber(redis.call('HGET', KEYS[2], '__v') or '-1')
if held > tonumber(ARGV[1]) then return 0 end
local old = redis.call('HGETALL', KEYS[2])
for i = 1, #old, 2 do
  if old[i] ~= '__v' then redis.call('ZREM', old[i], old[i + 1]) end
end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('HSET', KEYS[2], '__v', ARGV[1])
redis.call('EXPIRE', KEYS[2], 86400)
return 1
"""
