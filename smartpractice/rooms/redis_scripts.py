"""The Lua scripts behind RedisRoomState: every change that touches more than one key
runs as one script, so no other instance ever sees half of it.

Keys (P is SMARTPRACTICE_REDIS_PREFIX; docs/operations.md lists them with their TTLs):

    P:instances                  SET of instance ids that registered
    P:instance:<id>              the instance's lease (PX), renewed by its heartbeat
    P:instance:<id>:entries      SET of what it holds: "w|<practice>|<cid>|<key>", "c|<cid>|<key>"
    P:waiting:<practice>         HASH "<cid>|<key>" -> person (JSON: name, since)
    P:waiting:<practice>:tabs    HASH "<cid>|<key>|<instance>" -> open connections there
    P:admitted:<cid>             SET of participant keys let in (EXPIRE a day)
    P:call:<cid>                 HASH participant key -> seat (JSON, with its instance and order)
    P:relay:<cid>                the call was moved to the relay (EX a day)
    P:orphans                    ZSET "<cid>|<key>|<session>" scored by the ms its grace ends
    P:seq                        counter giving call seats their order

Scripts build key names from P, so they need a single Redis server (or a Sentinel
primary), not Redis Cluster.
"""

from __future__ import annotations

# Lines shared by several scripts: `has_prefix(hash, prefix)` is true when a field starts so.
_HELPERS = """
local function has_prefix(hash, prefix)
  for _, field in ipairs(redis.call('HKEYS', hash)) do
    if string.sub(field, 1, #prefix) == prefix then return true end
  end
  return false
end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
"""

# ARGV: P, instance, practice, slot, person JSON
ARRIVE = """
local P, iid, practice, slot = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local people = P .. ':waiting:' .. practice
redis.call('HSETNX', people, slot, ARGV[5])
redis.call('HINCRBY', people .. ':tabs', slot .. '|' .. iid, 1)
redis.call('SADD', P .. ':instance:' .. iid .. ':entries', 'w|' .. practice .. '|' .. slot)
return 1
"""

# ARGV: P, instance, practice, slot. 1 when the person's last connection left.
DEPART = _HELPERS + """
local P, iid, practice, slot = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local people = P .. ':waiting:' .. practice
local tabs = people .. ':tabs'
local field = slot .. '|' .. iid
local open = tonumber(redis.call('HGET', tabs, field) or '0')
if open == 0 then return 0 end
if open > 1 then
  redis.call('HSET', tabs, field, open - 1)
  return 0
end
redis.call('HDEL', tabs, field)
redis.call('SREM', P .. ':instance:' .. iid .. ':entries', 'w|' .. practice .. '|' .. slot)
if has_prefix(tabs, slot .. '|') then return 0 end
redis.call('HDEL', people, slot)
return 1
"""

# ARGV: P, practice, cid, key, seconds the admission is kept
ADMIT = """
local P, practice, cid, key = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local people = P .. ':waiting:' .. practice
local tabs = people .. ':tabs'
local slot = cid .. '|' .. key
local prefix = slot .. '|'
for _, field in ipairs(redis.call('HKEYS', tabs)) do
  if string.sub(field, 1, #prefix) == prefix then
    redis.call('HDEL', tabs, field)
    local owner = string.sub(field, #prefix + 1)
    redis.call('SREM', P .. ':instance:' .. owner .. ':entries', 'w|' .. practice .. '|' .. slot)
  end
end
redis.call('HDEL', people, slot)
redis.call('SADD', P .. ':admitted:' .. cid, key)
redis.call('EXPIRE', P .. ':admitted:' .. cid, tonumber(ARGV[5]))
return 1
"""

# ARGV: P, practice, cid
CLEAR = """
local P, practice, cid = ARGV[1], ARGV[2], ARGV[3]
local people = P .. ':waiting:' .. practice
local tabs = people .. ':tabs'
local prefix = cid .. '|'
for _, field in ipairs(redis.call('HKEYS', tabs)) do
  if string.sub(field, 1, #prefix) == prefix then
    redis.call('HDEL', tabs, field)
    local key, owner = string.match(field, '^[^|]+|([^|]+)|(.+)$')
    redis.call('SREM', P .. ':instance:' .. owner .. ':entries', 'w|' .. practice .. '|' .. cid .. '|' .. key)
  end
end
for _, field in ipairs(redis.call('HKEYS', people)) do
  if string.sub(field, 1, #prefix) == prefix then redis.call('HDEL', people, field) end
end
local call = P .. ':call:' .. cid
local seats = redis.call('HGETALL', call)
for i = 1, #seats, 2 do
  local seat = cjson.decode(seats[i + 1])
  if seat.instance ~= '' then
    redis.call('SREM', P .. ':instance:' .. seat.instance .. ':entries', 'c|' .. cid .. '|' .. seats[i])
  end
end
redis.call('DEL', call, P .. ':admitted:' .. cid, P .. ':relay:' .. cid)
return 1
"""

# ARGV: P, instance, cid, key, seat JSON. A newer session takes the seat and its place in the order.
JOIN_CALL = """
local P, iid, cid, key = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local call = P .. ':call:' .. cid
local seat = cjson.decode(ARGV[5])
local old = redis.call('HGET', call, key)
if old then
  local known = cjson.decode(old)
  seat.order = known.order
  if known.instance ~= '' then
    redis.call('SREM', P .. ':instance:' .. known.instance .. ':entries', 'c|' .. cid .. '|' .. key)
  end
else
  seat.order = redis.call('INCR', P .. ':seq')
end
seat.instance = iid
redis.call('HSET', call, key, cjson.encode(seat))
redis.call('SADD', P .. ':instance:' .. iid .. ':entries', 'c|' .. cid .. '|' .. key)
return 1
"""

# ARGV: P, cid, key, session, changes JSON. Only the session that holds the seat changes it.
UPDATE_CALL_PEER = """
local call = ARGV[1] .. ':call:' .. ARGV[2]
local old = redis.call('HGET', call, ARGV[3])
if not old then return 0 end
local seat = cjson.decode(old)
if seat.session ~= ARGV[4] then return 0 end
for name, value in pairs(cjson.decode(ARGV[5])) do seat[name] = value end
redis.call('HSET', call, ARGV[3], cjson.encode(seat))
return 1
"""

# ARGV: P, cid, key, session
LEAVE_CALL = """
local P, cid, key = ARGV[1], ARGV[2], ARGV[3]
local call = P .. ':call:' .. cid
local old = redis.call('HGET', call, key)
if not old then return 0 end
local seat = cjson.decode(old)
if seat.session ~= ARGV[4] then return 0 end
redis.call('HDEL', call, key)
if seat.instance ~= '' then
  redis.call('SREM', P .. ':instance:' .. seat.instance .. ':entries', 'c|' .. cid .. '|' .. key)
end
if redis.call('HLEN', call) == 0 then redis.call('DEL', call, P .. ':relay:' .. cid) end
return 1
"""

# ARGV: P, dead instance, grace in ms. Only once its lease is gone: its waiting
# connections go, its call seats turn "reconnecting" for the grace period (then SWEEP).
# Returns {practices, calls} that changed.
REAP = _HELPERS + """
local P, iid, grace = ARGV[1], ARGV[2], tonumber(ARGV[3])
if redis.call('EXISTS', P .. ':instance:' .. iid) == 1 then return {{}, {}} end
local entries = P .. ':instance:' .. iid .. ':entries'
local practices, calls, seen = {}, {}, {}
local deadline = now_ms() + grace
for _, entry in ipairs(redis.call('SMEMBERS', entries)) do
  if string.sub(entry, 1, 1) == 'w' then
    local practice, cid, key = string.match(entry, '^w|([^|]+)|([^|]+)|(.+)$')
    local people = P .. ':waiting:' .. practice
    local slot = cid .. '|' .. key
    if redis.call('HDEL', people .. ':tabs', slot .. '|' .. iid) == 1 then
      if not has_prefix(people .. ':tabs', slot .. '|') then redis.call('HDEL', people, slot) end
      if not seen['w' .. practice] then
        seen['w' .. practice] = true
        practices[#practices + 1] = practice
      end
    end
  else
    local cid, key = string.match(entry, '^c|([^|]+)|(.+)$')
    local call = P .. ':call:' .. cid
    local raw = redis.call('HGET', call, key)
    if raw then
      local seat = cjson.decode(raw)
      if seat.instance == iid then
        seat.instance = ''
        seat.state = 'reconnecting'
        redis.call('HSET', call, key, cjson.encode(seat))
        redis.call('ZADD', P .. ':orphans', deadline, cid .. '|' .. key .. '|' .. seat.session)
        if not seen['c' .. cid] then
          seen['c' .. cid] = true
          calls[#calls + 1] = cid
        end
      end
    end
  end
end
redis.call('DEL', entries)
redis.call('SREM', P .. ':instances', iid)
return {practices, calls}
"""

# ARGV: P. Seats left behind by a dead instance whose grace ended and that nobody took
# back leave the call. Returns the calls that changed.
SWEEP = _HELPERS + """
local P = ARGV[1]
local orphans = P .. ':orphans'
local calls, seen = {}, {}
for _, member in ipairs(redis.call('ZRANGEBYSCORE', orphans, '-inf', now_ms())) do
  redis.call('ZREM', orphans, member)
  local cid, key, session = string.match(member, '^([^|]+)|([^|]+)|(.+)$')
  local call = P .. ':call:' .. cid
  local raw = redis.call('HGET', call, key)
  if raw then
    local seat = cjson.decode(raw)
    if seat.session == session and seat.instance == '' then
      redis.call('HDEL', call, key)
      if redis.call('HLEN', call) == 0 then redis.call('DEL', call, P .. ':relay:' .. cid) end
      if not seen[cid] then
        seen[cid] = true
        calls[#calls + 1] = cid
      end
    end
  end
end
return calls
"""
