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
| `em:v2:{<org>}:mem:<contact>` | hash | sorted-set key -> member, so updates remove old ones |
| `em:v2:{<org>}:hist:<contact>` | string | its tier changes of the window, newest first |
| `em:v2:{<org>}:all` | sorted set, scores 0 | every contact with a snapshot |
| `em:v2:{<org>}:chan:<channel>` | sorted set, scores 0 | contacts showing the channel |
| `em:v2:{<org>}:sub:<channel>:<status>` | sorted set, scores 0 | contacts with that status |
| `em:v2:{<org>}:find:<field>` | sorted set, scores 0 | `<lower-cased value>|<contact>` |
| `em:v2:{<org>}:heat` | hash | `<channel>:<hour of week>` -> interactions of the window |
| `em:v2:{<org>}:chg:<scope>:<dir>` | sorted set, scores 0 | `<epoch s>|<prev>|<tier>|<contact>` |
| `em:v2:{<org>}:pmsg:whatsapp:<wamid>` | string, 92 days | `[contact, message]` (webhooks) |

(`<field>`: name, email or phone, a phone by its digits; `pmsg` is written by the API's
provider webhooks, everything else by the worker.)
| `em:v2:meta:<app>:p<n>` | string | sentinel: partition n's snapshots are present |

The org-wide sets (SPEC §7.4) are written by the same script as the segments, from the same
membership hash: they land with the snapshot, are replaced and removed with it, and a replay
never counts a contact twice; their ZCARDs are the overview's exact counts. Contacts written by
a worker before these sets existed join them when next written (`engagement-monitor
resnapshot` writes every contact at once).

Segment members sort lexicographically: `<inverted rate>` is `10000 - rate in hundredths`,
zero-padded, so a page lists the most engaged contacts first and a cursor is simply the last
member (exclusive range), stable under concurrent writes.
"""

from __future__ import annotations

VERSION_FIELD = "__v"

# Write many contacts of ONE org in one call (all keys share the org's hash tag, so the call stays
# in one Redis Cluster slot): replace each one's snapshot and segment memberships atomically, or
# remove it everywhere (deletion, SPEC §3), unless Redis already holds a newer version of it (a
# late write from a worker that lost the partition in a rebalance). Redis's own record of the
# old memberships decides what to remove, so a replay after a crash never leaves a stale member.
# A removed contact's membership hash keeps only its version, for a day, so a late older write
# cannot resurrect it.
#
# The membership hash also keeps the contact's hour-of-week histogram (`__h`) and its tier
# changes of the last 7 days (`__c`, lines `<set key>\t<member>`): the script adds only the
# difference between the held and the new ones to the org's heatmap hash and change sets, so
# those org-wide figures are sums that a replay, a rebuild or a removal keeps exact.
#
# KEYS: per contact, its snapshot key, its membership hash and its tier-history key.
# ARGV: the org's heatmap key, then per contact, in the same order as KEYS: version, snapshot
#   JSON (empty for a removal), the tier history JSON (empty: none), the heat field, the change
#   lines, the number of segments (-1 for a removal), then that many pairs (segment key, member).
# Returns how many contacts were written (the others were older than what Redis holds).
WRITE_CONTACTS_LUA = """
local heatkey = ARGV[1]
local a = 2
local written = 0
local function add_heat(text, sign, delta)
  for field, n in string.gmatch(text, '([^;=]+)=(%d+)') do
    delta[field] = (delta[field] or 0) + sign * tonumber(n)
  end
end
local function lines(text)
  local set = {}
  for line in string.gmatch(text, '[^\\n]+') do set[line] = true end
  return set
end
for i = 1, #KEYS, 3 do
  local snap, mem, hist = KEYS[i], KEYS[i + 1], KEYS[i + 2]
  local version = tonumber(ARGV[a])
  local snapshot = ARGV[a + 1]
  local history = ARGV[a + 2]
  local heat = ARGV[a + 3]
  local changes = ARGV[a + 4]
  local n = tonumber(ARGV[a + 5])
  local first = a + 6
  local last = first + 2 * math.max(n, 0) - 1
  a = last + 1
  local held = tonumber(redis.call('HGET', mem, '__v') or '-1')
  if held <= version then
    local old = redis.call('HGETALL', mem)
    local keep = {}
    for j = first, last, 2 do keep[ARGV[j]] = ARGV[j + 1] end
    local had = {}
    local oldheat, oldchanges = '', ''
    for j = 1, #old, 2 do
      local field = old[j]
      if field == '__h' then
        oldheat = old[j + 1]
      elseif field == '__c' then
        oldchanges = old[j + 1]
      elseif field ~= '__v' then
        had[field] = old[j + 1]
        if keep[field] ~= old[j + 1] then redis.call('ZREM', field, old[j + 1]) end
      end
    end
    if oldheat ~= heat then
      local delta = {}
      add_heat(oldheat, -1, delta)
      add_heat(heat, 1, delta)
      for field, d in pairs(delta) do
        if d ~= 0 and redis.call('HINCRBY', heatkey, field, d) == 0 then
          redis.call('HDEL', heatkey, field)
        end
      end
    end
    if oldchanges ~= changes then
      local before, after = lines(oldchanges), lines(changes)
      for line in pairs(before) do
        if not after[line] then
          local tab = string.find(line, '\t', 1, true)
          redis.call('ZREM', string.sub(line, 1, tab - 1), string.sub(line, tab + 1))
        end
      end
      for line in pairs(after) do
        if not before[line] then
          local tab = string.find(line, '\t', 1, true)
          redis.call('ZADD', string.sub(line, 1, tab - 1), 0, string.sub(line, tab + 1))
        end
      end
    end
    redis.call('DEL', mem)
    if history == '' then
      redis.call('DEL', hist)
    else
      redis.call('SET', hist, history)
    end
    if n < 0 then
      redis.call('DEL', snap)
      redis.call('HSET', mem, '__v', version)
      redis.call('EXPIRE', mem, 86400)
    else
      local fields = {'__v', version}
      if heat ~= '' then
        fields[#fields + 1] = '__h'
        fields[#fields + 1] = heat
      end
      if changes ~= '' then
        fields[#fields + 1] = '__c'
        fields[#fields + 1] = changes
      end
      for j = first, last, 2 do
        if had[ARGV[j]] ~= ARGV[j + 1] then redis.call('ZADD', ARGV[j], 0, ARGV[j + 1]) end
        fields[#fields + 1] = ARGV[j]
        fields[#fields + 1] = ARGV[j + 1]
      end
      redis.call('HSET', mem, unpack(fields))
      redis.call('SET', snap, snapshot)
    end
    written = written + 1
  end
end
return written
"""
