"""The Redis layout shared by the worker (writer) and the API (reader). Redis is a cache of the
tables: everything here can be rebuilt by the worker, so nothing here is the truth.

Keys carry the org in a hash tag (`{org}`) so that one org's keys share a Redis Cluster slot and
the per-contact Lua scripts stay single-slot. Every id in a key is escaped so that keys are an
injective function of their ids; the key functions live in ``engagement_monitor.keyspace``, the only
module that builds keys from ids.

| key | type | holds |
|---|---|---|
| `em:v2:{<org>}:snap:<contact>` | string | the snapshot, stored (`snapshot_codec`) |
| `em:v2:{<org>}:seg:<scope>:<tier>` | sorted set, scores 0 | members `<inverted rate>|<contact>` |
| `em:v2:{<org>}:mem:<contact>` | hash | what the contact is in and counted in (see the script) |
| `em:v2:{<org>}:hist:<contact>` | string | its tier changes of the window, newest first, stored |
| `em:v2:{<org>}:ov` | hash | counters: `n` (contacts), `<ch>:<status>` |
| `em:v2:{<org>}:find:<field>` | sorted set, scores 0 | `<lower-cased value>|<contact>` |
| `em:v2:{<org>}:heat` | hash | `<channel>:<hour of week>` -> interactions of the window |
| `em:v2:{<org>}:chg:<dir>` | sorted set, scores 0 | `<epoch s>|<prev>|<tier>|<contact>` |
| `em:v2:{<org>}:pmsg:whatsapp:<wamid>` | string, 92 days | `[contact, message]` (webhooks) |
| `em:v2:meta:<app>:p<n>:r<rev>` | string | sentinel: partition n's contacts are in this layout |

(`<field>`: name, email or phone, a phone by its digits; `<dir>`: up, down, new, lost, of the
overall tier, last 7 days; `pmsg` is written by the API's provider webhooks, everything else by
the worker.)

The org-wide figures (SPEC §7.4, issue 15) are written by the same script as the segments,
from the same membership hash: they land with the snapshot, are replaced and removed with it,
and a replay never counts a contact twice. The overview's counts are counters moved by the
difference between what the hash says the contact was counted in and what it is now, so they
are exact sums, read in one HGETALL; the heatmap likewise. Sentinels carry the layout's
revision (`LAYOUT_REVISION`): a worker of a release with a new layout finds none and rewrites
every contact of its partitions in it, so counters start complete. Stop every worker of the
older release before starting the new one: an older script does not know the newer fields.

Segment members sort lexicographically: `<inverted rate>` is `10000 - rate in hundredths`,
zero-padded, so a page lists the most engaged contacts first and a cursor is simply the last
member (exclusive range), stable under concurrent writes.
"""

from __future__ import annotations

VERSION_FIELD = "__v"
HEAT_FIELD = "__h"
LAYOUT_REVISION = 3  # 3: compressed snapshots and histories, overview counters, short fields

# Write many contacts of ONE org in one call (all keys share the org's hash tag, so the call stays
# in one Redis Cluster slot): replace each one's snapshot and memberships atomically, or remove
# it everywhere (deletion, SPEC §3), unless Redis already holds a newer version of it (a late
# write from a worker that lost the partition in a rebalance). Redis's own record of what the
# contact was in (its membership hash) decides what to remove and what to subtract, so a replay
# after a crash never leaves a stale member or counts twice. A removed contact's membership hash
# keeps only its version, for a day, so a late older write cannot resurrect it.
#
# The membership hash, kept small (Redis stores a hash of short fields as one listpack):
#   `__v`            the version written;
#   `__h`            the contact's hour-of-week histogram (`<channel>:<hour>=<n>;…`);
#   `#<counter>`     a counter of the org's overview hash it adds 1 to (`n`, `<ch>:<status>`);
#   `<suffix>[|…]`   a sorted-set membership: the set is `<org prefix><suffix>` (the suffix ends
#                    at the first `|`), the member `<value>|<contact>`.
# Fields of the layout before this one hold a whole key (`em:v2:{org}:…`) and a whole member:
# they are removed as they were written, and replaced by the new form.
#
# KEYS: per contact, its snapshot key, its membership hash and its tier-history key.
# ARGV: the org's key prefix, then per contact, in the same order as KEYS: version, stored
#   snapshot (empty for a removal), stored tier history (empty: none), the contact as a member,
#   the heat field, the number of counters and the counters, the number of sorted-set
#   memberships and that many pairs (field, value).
# Returns how many contacts were written (the others were older than what Redis holds).
WRITE_CONTACTS_LUA = """
local prefix = ARGV[1]
local overview = prefix .. 'ov'
local heatkey = prefix .. 'heat'
local a = 2
local written = 0
local function add_heat(text, sign, delta)
  for field, n in string.gmatch(text, '([^;=]+)=(%d+)') do
    delta[field] = (delta[field] or 0) + sign * tonumber(n)
  end
end
local function bump(key, field, by)
  if redis.call('HINCRBY', key, field, by) == 0 then redis.call('HDEL', key, field) end
end
local function set_of(field)
  local bar = string.find(field, '|', 1, true)
  if bar then return prefix .. string.sub(field, 1, bar - 1) end
  return prefix .. field
end
for i = 1, #KEYS, 3 do
  local snap, mem, hist = KEYS[i], KEYS[i + 1], KEYS[i + 2]
  local version = tonumber(ARGV[a])
  local stored = ARGV[a + 1]
  local history = ARGV[a + 2]
  local contact = ARGV[a + 3]
  local heat = ARGV[a + 4]
  local nc = tonumber(ARGV[a + 5])
  local c0 = a + 6
  local c1 = c0 + nc - 1
  local nm = tonumber(ARGV[c1 + 1])
  local m0 = c1 + 2
  local m1 = m0 + 2 * nm - 1
  a = m1 + 1
  local held = tonumber(redis.call('HGET', mem, '__v') or '-1')
  if held <= version then
    local old = redis.call('HGETALL', mem)
    local newm, newc = {}, {}
    for j = m0, m1, 2 do newm[ARGV[j]] = ARGV[j + 1] end
    for j = c0, c1 do newc[ARGV[j]] = true end
    local oldm, oldc, oldheat = {}, {}, ''
    for j = 1, #old, 2 do
      local field, value = old[j], old[j + 1]
      if field == '__h' then
        oldheat = value
      elseif string.byte(field, 1) == 35 then
        oldc[string.sub(field, 2)] = true
      elseif string.sub(field, 1, #prefix) == prefix then
        redis.call('ZREM', field, value)
      elseif field ~= '__v' then
        oldm[field] = value
      end
    end
    for field, value in pairs(oldm) do
      if newm[field] ~= value then redis.call('ZREM', set_of(field), value .. '|' .. contact) end
    end
    for field, value in pairs(newm) do
      if oldm[field] ~= value then redis.call('ZADD', set_of(field), 0, value .. '|' .. contact) end
    end
    for name in pairs(oldc) do
      if not newc[name] then bump(overview, name, -1) end
    end
    for name in pairs(newc) do
      if not oldc[name] then bump(overview, name, 1) end
    end
    if oldheat ~= heat then
      local delta = {}
      add_heat(oldheat, -1, delta)
      add_heat(heat, 1, delta)
      for field, d in pairs(delta) do
        if d ~= 0 then bump(heatkey, field, d) end
      end
    end
    redis.call('DEL', mem)
    if history == '' then
      redis.call('DEL', hist)
    else
      redis.call('SET', hist, history)
    end
    if stored == '' then
      redis.call('DEL', snap)
      redis.call('HSET', mem, '__v', version)
      redis.call('EXPIRE', mem, 86400)
    else
      local fields = {'__v', version}
      if heat ~= '' then
        fields[#fields + 1] = '__h'
        fields[#fields + 1] = heat
      end
      for name in pairs(newc) do
        fields[#fields + 1] = '#' .. name
        fields[#fields + 1] = '1'
      end
      for field, value in pairs(newm) do
        fields[#fields + 1] = field
        fields[#fields + 1] = value
      end
      redis.call('HSET', mem, unpack(fields))
      redis.call('SET', snap, stored)
    end
    written = written + 1
  end
end
return written
"""
