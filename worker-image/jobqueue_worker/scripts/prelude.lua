--[[ prelude: prepended to every script by jobqueue_worker/lua.py, after the
generated locals (key offsets, KEY_* for a one-queue script, named arguments).

now / now_s      Redis server time in ms / in seconds (never a client's clock)
band(p)          a priority field as a band 1..10; a corrupt one is NORMAL (5),
                 so it can never index another key
ready_key(q, p)  the ready ZSET of queue q for priority p
wake(q, n)       leave n wake tokens (at most 100) for the queue's idle workers
poisoned(d)      true when d deliveries without finishing spend max_deliveries
dead_letter(q, id, jk, reason, err, tb)
                 THE dead-letter write (needs the dlq_max_age_ms and
                 dlq_max_count arguments): lease dropped, dead set, job hash,
                 counter, then retention trimmed
]]
local _time = redis.call('TIME')
local now = tonumber(_time[1]) * 1000 + math.floor(tonumber(_time[2]) / 1000)
local now_s = tonumber(_time[1]) + tonumber(_time[2]) / 1000000

local function band(p)
  p = tonumber(p)
  if p == nil or p < 1 or p > 10 or p ~= math.floor(p) then return 5 end
  return p
end

local function ready_key(q, p) return K(q, READY_1 - 1 + band(p)) end

local function wake(q, n)
  local tokens = {}
  for j = 1, math.min(n, 100) do tokens[j] = '1' end
  if redis.call('RPUSH', K(q, WAKE), unpack(tokens)) > 100 then
    redis.call('LTRIM', K(q, WAKE), 0, 99)
  end
  redis.call('PEXPIRE', K(q, WAKE), 60000)
end

local function poisoned(delivered) return delivered >= max_deliveries end

local function trim_dead(q)
  local jp, dead = K(q, JOB_PREFIX), K(q, DEAD)
  local old = redis.call('ZRANGEBYSCORE', dead, '-inf', now - dlq_max_age_ms, 'LIMIT', 0, 100)
  for _, id in ipairs(old) do
    redis.call('DEL', jp .. id)
    redis.call('ZREM', dead, id)
  end
  local over = redis.call('ZCARD', dead) - dlq_max_count
  if over > 0 then
    for _, id in ipairs(redis.call('ZRANGE', dead, 0, math.min(over, 100) - 1)) do
      redis.call('DEL', jp .. id)
      redis.call('ZREM', dead, id)
    end
  end
end

-- Dead-letter scores advance by at least 1 microsecond per job, so jobs dead-lettered
-- in the same millisecond keep their order and count-based retention drops the oldest.
local function dead_score(q)
  local last = tonumber(redis.call('HGET', K(q, COUNTERS), 'last_dead_us') or 0)
  local us = math.max(now * 1000, last + 1)
  redis.call('HSET', K(q, COUNTERS), 'last_dead_us', string.format('%d', us))
  return us / 1000
end

local function dead_letter(q, id, jk, reason, err, tb)
  redis.call('ZREM', K(q, LEASES), id)
  redis.call('ZADD', K(q, DEAD), dead_score(q), id)
  redis.call('HSET', jk, 'status', 'dead', 'dead_reason', reason, 'dead_at', now,
    'last_failed_at', now, 'error', err or '', 'traceback', tb or '')
  redis.call('HSETNX', jk, 'first_failed_at', now)
  redis.call('PEXPIRE', jk, dlq_max_age_ms)
  redis.call('HINCRBY', K(q, COUNTERS), 'dead', 1)
  trim_dead(q)
end
