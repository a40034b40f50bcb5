"""The relay workers' registry in Redis, shared by the workers (rooms/relay_worker.py)
and the web instances that place calls on them (rooms/relay_routing.py). Every change
that touches more than one key is one Lua script, so no instance sees half of it.

Keys (P is SMARTPRACTICE_REDIS_PREFIX; docs/operations.md lists them):

    P:workers                    SET of worker ids that registered
    P:worker:<id>                HASH address, ports, host, pid, load, rooms, streams, draining,
                                 cpu, lag_ms, full; its TTL is the worker's lease (LEASE_SECONDS),
                                 renewed by its lease thread (rooms/relay_lease.py)
    P:worker:<id>:calls          SET of consultation ids placed on it
    P:worker:<id>:inbox          LIST of requests from web instances (JSON), EXPIRE 30 s
    P:placement:<cid>            the worker a relayed call lives on (EX a day)
    P:generations:<cid>          HASH participant key -> publish generation, and PUBLISHES ->
                                 the call's count of publishes the generations are drawn from (EX a day)
    P:ch:relay-replies:<id>      pub/sub channel of a web instance's answers from workers
"""

from __future__ import annotations

# A worker that stops renewing is given up after this; its lease thread renews it three
# times within, so one late renewal on a busy machine does not lose it.
LEASE_SECONDS = 3.0
HEARTBEAT_SECONDS = 1.0
# The lease thread renews only while the worker's event loop has answered within this: a
# loop silent that long (hung, not merely busy) has frozen every call on it, so the worker
# is given up LOOP_SILENCE_SECONDS + LEASE_SECONDS after its last answer.
LOOP_SILENCE_SECONDS = 6.0
# A worker is `full` (placed on only when every live worker is) at this share of its one
# core, or when its event loop answers this late: a saturated loop forwards late.
FULL_CPU = 0.85
FULL_LAG_SECONDS = 0.2
# Placements and generations outlive any consultation; they are removed when a call ends
# or leaves the relay, and this only bounds what a crash leaves behind.
KEEP_SECONDS = 24 * 3600
INBOX_SECONDS = 30
# The field of P:generations:<cid> that counts publishes; no participant key starts with "#".
PUBLISHES = "#publishes"


def key(prefix: str, *parts: object) -> str:
    return ":".join((prefix, *(str(part) for part in parts)))


def channel_key(prefix: str, channel: str) -> str:
    """The Redis channel of a RoomState channel (as RedisRoomState names it)."""
    return key(prefix, "ch", channel)


def replies_channel(instance: str) -> str:
    return f"relay-replies:{instance}"


# ARGV: P, cid, keep seconds. The call's worker: the one it is placed on, or else the live
# worker that is not draining with the fewest calls (then the lowest reported load), one
# that is not full if there is one (as LiveKit and Jitsi prefer nodes below their load
# limit and fall back to the rest). "" when there is none; "!<id>" when the call sits on a worker whose lease ran out and that
# nobody has reaped yet (the caller reaps, then asks again).
PLACE = """
local P, cid = ARGV[1], ARGV[2]
local placement = P .. ':placement:' .. cid
local current = redis.call('GET', placement)
if current then
  if redis.call('EXISTS', P .. ':worker:' .. current) == 1 then return current end
  if redis.call('SISMEMBER', P .. ':workers', current) == 1 then return '!' .. current end
  redis.call('DEL', placement)  -- a worker that said goodbye
end
local best, best_full, best_calls, best_load = nil, 1, 0, 0
for _, id in ipairs(redis.call('SMEMBERS', P .. ':workers')) do
  local worker = P .. ':worker:' .. id
  if redis.call('EXISTS', worker) == 1 then
    local fields = redis.call('HMGET', worker, 'draining', 'load', 'full')
    if fields[1] ~= '1' then
      local full = fields[3] == '1' and 1 or 0
      local calls = redis.call('SCARD', worker .. ':calls')
      local load = tonumber(fields[2] or '0') or 0
      if best == nil or full < best_full or (full == best_full and (calls < best_calls
          or (calls == best_calls and load < best_load))) then
        best, best_full, best_calls, best_load = id, full, calls, load
      end
    end
  end
end
if best == nil then return '' end
redis.call('SET', placement, best, 'EX', tonumber(ARGV[3]))
redis.call('SADD', P .. ':worker:' .. best .. ':calls', cid)
return best
"""

# ARGV: P, worker, lease ms, registered (1 or 0), then the hash's fields and values. A
# worker's renewal: 0 when it had registered and its lease is gone meanwhile (its calls
# were or are about to be given to others: it must not come back under that id), else 1.
# `draining` once set stays: a renewal with figures taken before the drain began must not
# open the worker to new calls again.
RENEW = """
local P, me = ARGV[1], ARGV[2]
local worker = P .. ':worker:' .. me
if ARGV[4] == '1' and redis.call('EXISTS', worker) == 0 then return 0 end
local draining = redis.call('HGET', worker, 'draining')
redis.call('HSET', worker, unpack(ARGV, 5))
if draining == '1' then redis.call('HSET', worker, 'draining', '1') end
redis.call('PEXPIRE', worker, tonumber(ARGV[3]))
redis.call('SADD', P .. ':workers', me)
return 1
"""

# ARGV: P, cid, worker, keep seconds. A worker about to attach someone of the call: 1 if
# the call is (now) placed on it, 0 if it lives elsewhere or this worker is draining.
CLAIM = """
local P, cid, me = ARGV[1], ARGV[2], ARGV[3]
local placement = P .. ':placement:' .. cid
local current = redis.call('GET', placement)
if current and current ~= me then return 0 end
if not current and redis.call('HGET', P .. ':worker:' .. me, 'draining') == '1' then return 0 end
redis.call('SET', placement, me, 'EX', tonumber(ARGV[4]))
redis.call('SADD', P .. ':worker:' .. me .. ':calls', cid)
return 1
"""

# ARGV: P, cid, worker. The call left this worker (its room emptied or was released).
UNPLACE = """
local P, cid, me = ARGV[1], ARGV[2], ARGV[3]
if redis.call('GET', P .. ':placement:' .. cid) == me then redis.call('DEL', P .. ':placement:' .. cid) end
redis.call('SREM', P .. ':worker:' .. me .. ':calls', cid)
return 1
"""

# ARGV: P, worker. A draining worker gives its calls up: it takes no new ones, and the
# calls placed on it are placed afresh at their next attach. Returns their ids.
HAND_OVER = """
local P, me = ARGV[1], ARGV[2]
local worker = P .. ':worker:' .. me
redis.call('HSET', worker, 'draining', '1')
local calls = redis.call('SMEMBERS', worker .. ':calls')
for _, cid in ipairs(calls) do
  if redis.call('GET', P .. ':placement:' .. cid) == me then redis.call('DEL', P .. ':placement:' .. cid) end
end
redis.call('DEL', worker .. ':calls')
return calls
"""

# ARGV: P. Workers whose lease ran out, and the calls that were placed on them (now
# unplaced). Only one caller gets each: the script removes what it returns.
REAP = """
local P = ARGV[1]
local gone, moved = {}, {}
for _, id in ipairs(redis.call('SMEMBERS', P .. ':workers')) do
  local worker = P .. ':worker:' .. id
  if redis.call('EXISTS', worker) == 0 then
    table.insert(gone, id)
    for _, cid in ipairs(redis.call('SMEMBERS', worker .. ':calls')) do
      if redis.call('GET', P .. ':placement:' .. cid) == id then
        redis.call('DEL', P .. ':placement:' .. cid)
        table.insert(moved, cid)
      end
    end
    redis.call('DEL', worker .. ':calls', worker .. ':inbox')
    redis.call('SREM', P .. ':workers', id)
  end
end
return {gone, moved}
"""

# ARGV: P, worker. A worker's goodbye once its rooms are closed.
LEAVE = """
local P, me = ARGV[1], ARGV[2]
local worker = P .. ':worker:' .. me
redis.call('DEL', worker, worker .. ':calls', worker .. ':inbox')
redis.call('SREM', P .. ':workers', me)
return 1
"""
