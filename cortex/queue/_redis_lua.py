"""Lua scripts of :mod:`cortex.queue.redis`; each runs atomically inside Redis.

Keys of queue ``q`` under the broker's prefix ``P`` (default ``cxq:``): ``P{q}:meta`` (hash of
attributes), ``P{q}:seq`` (send counter: FIFO order), ``P{q}:ready`` (zset id -> seq: visible
messages), ``P{q}:leases`` (zset id -> lease deadline in ms: in-flight), ``P{q}:m:<id>`` (hash
body, sent_ms, rc, seq) and ``P:queues`` (set of names). Every script takes ARGV[1] = prefix,
ARGV[2] = queue name, and reads the time with ``TIME`` so all clients share Redis's clock.
Errors are replies starting with ``CXQ_NOQUEUE`` (unknown queue) for the client to map.
"""

from __future__ import annotations

_COMMON = """
if redis.replicate_commands then redis.replicate_commands() end
local P, Q = ARGV[1], ARGV[2]
local DEFAULT_VIS_MS = 60000
local function key(q, suffix) return P .. '{' .. q .. '}:' .. suffix end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function need_queue(q)
  if redis.call('EXISTS', key(q, 'meta')) == 0 then
    return redis.error_reply('CXQ_NOQUEUE ' .. q)
  end
end
local function ensure_queue(q, vis_ms)
  if redis.call('EXISTS', key(q, 'meta')) == 0 then
    redis.call('HSET', key(q, 'meta'), 'vis_ms', vis_ms, 'max_rc', '', 'dlq', '')
    redis.call('SADD', P .. 'queues', q)
  end
end
-- Leases that ran out go back to 'ready' at their original place.
local function requeue_expired(q, now)
  local expired = redis.call('ZRANGEBYSCORE', key(q, 'leases'), '-inf', now)
  for _, id in ipairs(expired) do
    redis.call('ZREM', key(q, 'leases'), id)
    redis.call('ZADD', key(q, 'ready'), redis.call('HGET', key(q, 'm:' .. id), 'seq'), id)
  end
end
-- The id a receipt '<id>.<rc>' names, if it still holds that message's lease.
local function held(q, receipt)
  local dot = string.find(receipt, '.', 1, true)
  if not dot then return nil end
  local id = string.sub(receipt, 1, dot - 1)
  local rc = redis.call('HGET', key(q, 'm:' .. id), 'rc')
  if rc and rc == string.sub(receipt, dot + 1) then return id end
  return nil
end
"""

CREATE = (
    _COMMON
    + """
-- ARGV[3] vis_ms, ARGV[4] max_rc ('' = none), ARGV[5] dlq ('' = none)
redis.call('HSET', key(Q, 'meta'), 'vis_ms', ARGV[3], 'max_rc', ARGV[4], 'dlq', ARGV[5])
redis.call('SADD', P .. 'queues', Q)
if ARGV[5] ~= '' then ensure_queue(ARGV[5], DEFAULT_VIS_MS) end
return 1
"""
)

SEND = (
    _COMMON
    + """
-- ARGV[3..] message ids and bodies, alternating
local err = need_queue(Q); if err then return err end
local now = now_ms()
for i = 3, #ARGV, 2 do
  local seq = redis.call('INCR', key(Q, 'seq'))
  redis.call('HSET', key(Q, 'm:' .. ARGV[i]), 'body', ARGV[i + 1], 'sent_ms', now, 'rc', 0,
             'seq', seq)
  redis.call('ZADD', key(Q, 'ready'), seq, ARGV[i])
end
return (#ARGV - 2) / 2
"""
)

RECEIVE = (
    _COMMON
    + """
-- ARGV[3] max messages, ARGV[4] visibility ms ('' = the queue's)
-- returns {id, body, receipt, rc, sent_ms} per delivered message
local err = need_queue(Q); if err then return err end
local meta = redis.call('HMGET', key(Q, 'meta'), 'vis_ms', 'max_rc', 'dlq')
local vis = tonumber(ARGV[4] ~= '' and ARGV[4] or meta[1])
local max_rc = tonumber(meta[2] or '')
local dlq = meta[3]
local want = tonumber(ARGV[3])
local now = now_ms()
requeue_expired(Q, now)
local out = {}
while #out < want do
  local ids = redis.call('ZRANGE', key(Q, 'ready'), 0, want - #out - 1)
  if #ids == 0 then break end
  for _, id in ipairs(ids) do
    local mkey = key(Q, 'm:' .. id)
    redis.call('ZREM', key(Q, 'ready'), id)
    local rc = tonumber(redis.call('HGET', mkey, 'rc')) + 1
    if max_rc and rc > max_rc then
      ensure_queue(dlq, DEFAULT_VIS_MS)
      local seq = redis.call('INCR', key(dlq, 'seq'))
      local dkey = key(dlq, 'm:' .. id)
      redis.call('RENAME', mkey, dkey)
      redis.call('HSET', dkey, 'seq', seq)
      redis.call('ZADD', key(dlq, 'ready'), seq, id)
    else
      redis.call('HSET', mkey, 'rc', rc)
      redis.call('ZADD', key(Q, 'leases'), now + vis, id)
      local m = redis.call('HMGET', mkey, 'body', 'sent_ms')
      out[#out + 1] = {id, m[1], id .. '.' .. rc, rc, m[2]}
    end
  end
end
return out
"""
)

EXTEND = (
    _COMMON
    + """
-- ARGV[3] receipt, ARGV[4] visibility ms; returns 1, or 0 for a stale receipt
local err = need_queue(Q); if err then return err end
local id = held(Q, ARGV[3])
if not id then return 0 end
redis.call('ZREM', key(Q, 'ready'), id)
redis.call('ZADD', key(Q, 'leases'), now_ms() + tonumber(ARGV[4]), id)
return 1
"""
)

RELEASE = (
    _COMMON
    + """
-- ARGV[3] receipt; returns 1, or 0 for a stale receipt
local err = need_queue(Q); if err then return err end
local id = held(Q, ARGV[3])
if not id then return 0 end
redis.call('ZREM', key(Q, 'leases'), id)
redis.call('ZADD', key(Q, 'ready'), redis.call('HGET', key(Q, 'm:' .. id), 'seq'), id)
return 1
"""
)

ACK = (
    _COMMON
    + """
-- ARGV[3] receipt; returns 1, or 0 for a stale receipt
local err = need_queue(Q); if err then return err end
local id = held(Q, ARGV[3])
if not id then return 0 end
redis.call('DEL', key(Q, 'm:' .. id))
redis.call('ZREM', key(Q, 'leases'), id)
redis.call('ZREM', key(Q, 'ready'), id)
return 1
"""
)

COUNTS = (
    _COMMON
    + """
-- returns {visible, in_flight}
local err = need_queue(Q); if err then return err end
local now = now_ms()
local expired = redis.call('ZCOUNT', key(Q, 'leases'), '-inf', now)
local live = redis.call('ZCOUNT', key(Q, 'leases'), '(' .. now, '+inf')
return {redis.call('ZCARD', key(Q, 'ready')) + expired, live}
"""
)

PURGE = (
    _COMMON
    + """
-- ARGV[3] '1' to delete the queue too; returns 1 if the queue existed
local existed = redis.call('EXISTS', key(Q, 'meta'))
if existed == 0 and ARGV[3] ~= '1' then return need_queue(Q) end
for _, z in ipairs({'ready', 'leases'}) do
  for _, id in ipairs(redis.call('ZRANGE', key(Q, z), 0, -1)) do
    redis.call('DEL', key(Q, 'm:' .. id))
  end
  redis.call('DEL', key(Q, z))
end
if ARGV[3] == '1' then
  redis.call('DEL', key(Q, 'meta'), key(Q, 'seq'))
  redis.call('SREM', P .. 'queues', Q)
end
return existed
"""
)

LIST = (
    _COMMON
    + """
-- ARGV[3] limit; returns {id, body, '', rc, sent_ms} in FIFO order, in-flight ones included
local err = need_queue(Q); if err then return err end
local limit = tonumber(ARGV[3])
if limit <= 0 then return {} end
local all = {}
local ready = redis.call('ZRANGE', key(Q, 'ready'), 0, limit - 1, 'WITHSCORES')
for i = 1, #ready, 2 do all[#all + 1] = {tonumber(ready[i + 1]), ready[i]} end
for _, id in ipairs(redis.call('ZRANGE', key(Q, 'leases'), 0, -1)) do
  all[#all + 1] = {tonumber(redis.call('HGET', key(Q, 'm:' .. id), 'seq')), id}
end
table.sort(all, function(a, b) return a[1] < b[1] end)
local out = {}
for i = 1, math.min(limit, #all) do
  local id = all[i][2]
  local m = redis.call('HMGET', key(Q, 'm:' .. id), 'body', 'rc', 'sent_ms')
  out[#out + 1] = {id, m[1], '', tonumber(m[2]), m[3]}
end
return out
"""
)
