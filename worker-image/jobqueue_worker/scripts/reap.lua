--[[ reap: return jobs whose lease expired (their worker died or hung) to the front
of their band; a job whose worker died max_deliveries times goes to the DLQ (poison).
Gated by SET NX PX so one worker per interval does the work; bounded per call.

KEYS: the 19-key block of one queue (see step.lua)
ARGV: [1] gate ms  [2] batch  [3] max deliveries  [4] dlq max age ms
      [5] dlq max count  [6] job ttl ms  [7] worker id (gate owner, for debugging)
Returns: {requeued, dead} or {-1, -1} when another worker holds the gate.
]]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if not redis.call('SET', KEYS[18], ARGV[7], 'NX', 'PX', tonumber(ARGV[1])) then
  return {-1, -1}
end
local max_deliveries = tonumber(ARGV[3])
local dlq_age = tonumber(ARGV[4])
local dlq_count = tonumber(ARGV[5])
local job_ttl = tonumber(ARGV[6])
local jp = KEYS[16]
-- A corrupt priority field must not index another key: fall back to NORMAL (5).
local function band(p)
  p = tonumber(p)
  if p == nil or p < 1 or p > 10 or p ~= math.floor(p) then return 5 end
  return p
end

local expired = redis.call('ZRANGEBYSCORE', KEYS[12], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
local requeued, dead = 0, 0
for _, id in ipairs(expired) do
  local jk = jp .. id
  local f = redis.call('HMGET', jk, 'priority', 'ready_at', 'deliveries')
  redis.call('ZREM', KEYS[12], id)
  if f[1] then
    redis.call('HINCRBY', KEYS[14], 'reaped', 1)
    if tonumber(f[3] or 0) >= max_deliveries then
      -- Unique, ordered dead-letter scores (see step.lua's dead_score).
      local last = tonumber(redis.call('HGET', KEYS[14], 'last_dead_us') or 0)
      local us = math.max(now * 1000, last + 1)
      redis.call('HSET', KEYS[14], 'last_dead_us', string.format('%d', us))
      redis.call('ZADD', KEYS[13], us / 1000, id)
      redis.call('HSET', jk, 'status', 'dead', 'dead_reason', 'poison', 'dead_at', now,
        'last_failed_at', now, 'traceback', '',
        'error', 'lease expired after ' .. (f[3] or 0) .. ' deliveries without finishing')
      redis.call('HSETNX', jk, 'first_failed_at', now)
      redis.call('PEXPIRE', jk, dlq_age)
      redis.call('HINCRBY', KEYS[14], 'dead', 1)
      dead = dead + 1
    else
      redis.call('ZADD', KEYS[band(f[1])], tonumber(f[2]) or now, id)
      redis.call('HSET', jk, 'status', 'queued')
      redis.call('PEXPIRE', jk, job_ttl)
      redis.call('RPUSH', KEYS[15], '1')
      redis.call('LTRIM', KEYS[15], 0, 99)
      redis.call('PEXPIRE', KEYS[15], 60000)
      requeued = requeued + 1
    end
  end
end
if dead > 0 then
  local old = redis.call('ZRANGEBYSCORE', KEYS[13], '-inf', now - dlq_age, 'LIMIT', 0, 100)
  for _, id in ipairs(old) do
    redis.call('DEL', jp .. id)
    redis.call('ZREM', KEYS[13], id)
  end
  local over = redis.call('ZCARD', KEYS[13]) - dlq_count
  if over > 0 then
    for _, id in ipairs(redis.call('ZRANGE', KEYS[13], 0, math.min(over, 100) - 1)) do
      redis.call('DEL', jp .. id)
      redis.call('ZREM', KEYS[13], id)
    end
  end
end
return {requeued, dead}
