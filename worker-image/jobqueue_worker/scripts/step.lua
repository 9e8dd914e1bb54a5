--[[ step: apply finished jobs (ack/retry/dead/failed/release), promote due delayed
jobs, then lease up to N ready jobs. Ack + next fetch is ONE round trip.

KEYS: for each served queue, a block of 18 keys (broker.queue_keys), in order:
  [1..10] ready:1..10 ZSET   [11] delayed ZSET   [12] leases ZSET   [13] dead ZSET
  [14] counters HASH  [15] wake LIST  [16] job key prefix  [17] idem key prefix
  [18] reaper gate
ARGV:
  [1] worker id          [2] lease ms           [3] max deliveries
  [4] n to fetch         [5] mode: strict|weighted
  [6] aging ms (0: off)  [7] random in [0,1) (weighted pick; passed in so tests are exact)
  [8] promote batch      [9] job ttl ms         [10] result ttl ms
  [11] dlq max age ms    [12] dlq max count     [13] finish ops JSON array
  [14] queue weights JSON array ("[]" in strict mode)
Finish op: {q, id, token, op: complete|retry|dead|failed|release,
            result?, duration_ms?, delay_ms?, error?, traceback?, reason?}
Returns: {acks, fetched, next_due_ms, now_ms}
  acks: 1/0 per finish op (0: the fencing token no longer matches; ignored)
  fetched: flat list of 6 per job: queue index, id, envelope, attempt, deliveries, token
  next_due_ms: earliest delayed due time over the queues, or -1
]]
local QK = 18
local nq = #KEYS / QK
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local worker = ARGV[1]
local lease_ms = tonumber(ARGV[2])
local max_deliveries = tonumber(ARGV[3])
local n_fetch = tonumber(ARGV[4])
local mode = ARGV[5]
local aging_ms = tonumber(ARGV[6])
local rnd = tonumber(ARGV[7])
local batch = tonumber(ARGV[8])
local job_ttl = tonumber(ARGV[9])
local result_ttl = tonumber(ARGV[10])
local dlq_age = tonumber(ARGV[11])
local dlq_count = tonumber(ARGV[12])
local ops = cjson.decode(ARGV[13])
local weights = cjson.decode(ARGV[14])

local function K(q, i) return KEYS[(q - 1) * QK + i] end
-- A corrupt priority field must not index another key: fall back to NORMAL (5).
local function band(p)
  p = tonumber(p)
  if p == nil or p < 1 or p > 10 or p ~= math.floor(p) then return 5 end
  return p
end
local function ready(q, p) return K(q, band(p)) end

local function wake(q)
  redis.call('RPUSH', K(q, 15), '1')
  redis.call('LTRIM', K(q, 15), 0, 99)
  redis.call('PEXPIRE', K(q, 15), 60000)
end

local function trim_dead(q)
  local jp = K(q, 16)
  local old = redis.call('ZRANGEBYSCORE', K(q, 13), '-inf', now - dlq_age, 'LIMIT', 0, 100)
  for _, id in ipairs(old) do
    redis.call('DEL', jp .. id)
    redis.call('ZREM', K(q, 13), id)
  end
  local over = redis.call('ZCARD', K(q, 13)) - dlq_count
  if over > 0 then
    local ids = redis.call('ZRANGE', K(q, 13), 0, math.min(over, 100) - 1)
    for _, id in ipairs(ids) do
      redis.call('DEL', jp .. id)
      redis.call('ZREM', K(q, 13), id)
    end
  end
end

local function to_dead(q, id, jk, reason, err, tb)
  redis.call('ZREM', K(q, 12), id)
  redis.call('ZADD', K(q, 13), now, id)
  redis.call('HSET', jk, 'status', 'dead', 'dead_reason', reason, 'dead_at', now,
    'last_failed_at', now, 'error', err or '', 'traceback', tb or '')
  redis.call('HSETNX', jk, 'first_failed_at', now)
  redis.call('PEXPIRE', jk, dlq_age)
  redis.call('HINCRBY', K(q, 14), 'dead', 1)
  trim_dead(q)
end

-- 1. finished jobs
local acks = {}
for i, op in ipairs(ops) do
  local q = tonumber(op.q)
  local id = op.id
  local jk = K(q, 16) .. id
  local f = redis.call('HMGET', jk, 'token', 'priority', 'ready_at')
  local ok = 0
  if f[1] and f[1] == tostring(op.token) then
    local held = redis.call('ZSCORE', K(q, 12), id)
    -- Reaped but not yet fetched again: the late ack still wins (saves a duplicate).
    local reaped = (not held) and f[2] and redis.call('ZSCORE', ready(q, f[2]), id)
    if held or reaped then
      ok = 1
      if reaped then redis.call('ZREM', ready(q, f[2]), id) end
      local dur = tonumber(op.duration_ms or 0)
      if op.op == 'complete' then
        redis.call('ZREM', K(q, 12), id)
        redis.call('HSET', jk, 'status', 'completed', 'finished_at', now,
          'duration_ms', dur, 'result', op.result or 'null', 'worker', worker)
        redis.call('PEXPIRE', jk, result_ttl)
        redis.call('HINCRBY', K(q, 14), 'completed', 1)
        redis.call('HINCRBY', K(q, 14), 'busy_ms', dur)
      elseif op.op == 'retry' then
        local due = now + tonumber(op.delay_ms or 0)
        redis.call('ZREM', K(q, 12), id)
        redis.call('ZADD', K(q, 11), due, id)
        redis.call('HINCRBY', jk, 'attempt', 1)
        redis.call('HSET', jk, 'status', 'retry_scheduled', 'deliveries', 0, 'due_at', due,
          'last_failed_at', now, 'error', op.error or '', 'traceback', op.traceback or '',
          'duration_ms', dur)
        redis.call('HSETNX', jk, 'first_failed_at', now)
        redis.call('PEXPIRE', jk, job_ttl + tonumber(op.delay_ms or 0))
        redis.call('HINCRBY', K(q, 14), 'failed', 1)
        redis.call('HINCRBY', K(q, 14), 'retried', 1)
        redis.call('HINCRBY', K(q, 14), 'busy_ms', dur)
        wake(q)
      elseif op.op == 'dead' then
        if op.reason == 'exception' or op.reason == 'permanent' then
          redis.call('HINCRBY', K(q, 14), 'failed', 1)
          redis.call('HINCRBY', K(q, 14), 'busy_ms', dur)
        end
        redis.call('HSET', jk, 'duration_ms', dur)
        to_dead(q, id, jk, op.reason, op.error, op.traceback)
      elseif op.op == 'failed' then
        redis.call('ZREM', K(q, 12), id)
        redis.call('HSET', jk, 'status', 'failed', 'finished_at', now, 'last_failed_at', now,
          'duration_ms', dur, 'error', op.error or '', 'traceback', op.traceback or '')
        redis.call('HSETNX', jk, 'first_failed_at', now)
        redis.call('PEXPIRE', jk, result_ttl)
        redis.call('HINCRBY', K(q, 14), 'failed', 1)
        redis.call('HINCRBY', K(q, 14), 'busy_ms', dur)
      elseif op.op == 'release' then
        -- Handed back at shutdown: front of its band, and the delivery does not count.
        redis.call('ZREM', K(q, 12), id)
        redis.call('ZADD', ready(q, f[2]), tonumber(f[3]) or now, id)
        redis.call('HINCRBY', jk, 'deliveries', -1)
        redis.call('HSET', jk, 'status', 'queued')
        wake(q)
      else
        ok = 0
      end
      -- This delivery is over: a repeated or stale ack of it must never count
      -- again (e.g. a retried reply-lost ack after the retry was promoted).
      if ok == 1 then redis.call('HDEL', jk, 'token') end
    end
  end
  acks[i] = ok
end

-- 2. promote due delayed jobs (bounded per call)
for q = 1, nq do
  local due = redis.call('ZRANGEBYSCORE', K(q, 11), '-inf', now, 'WITHSCORES', 'LIMIT', 0, batch)
  for j = 1, #due, 2 do
    local id, score = due[j], due[j + 1]
    local p = redis.call('HGET', K(q, 16) .. id, 'priority')
    redis.call('ZREM', K(q, 11), id)
    if p then
      redis.call('ZADD', ready(q, p), score, id)
      redis.call('HSET', K(q, 16) .. id, 'status', 'queued', 'ready_at', score)
    end
  end
end

-- 3. pick and lease up to n_fetch jobs
local function head(key)
  local h = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  if h[1] then return tonumber(h[2]) end
  return nil
end

local function pick_in(q)
  -- Aging first: the oldest job waiting longer than aging_ms, whatever its band.
  local best, best_score = nil, nil
  if aging_ms > 0 then
    for p = 1, 10 do
      local s = head(ready(q, p))
      if s and s <= now - aging_ms and (not best_score or s < best_score) then
        best, best_score = p, s
      end
    end
    if best then return best, best_score end
  end
  for p = 1, 10 do
    if redis.call('ZCARD', ready(q, p)) > 0 then return p, nil end
  end
  return nil, nil
end

local function pick()
  if mode == 'weighted' then
    local total, avail = 0, {}
    for q = 1, nq do
      local w = tonumber(weights[q] or 1)
      local p = pick_in(q)
      if p and w > 0 then
        total = total + w
        avail[#avail + 1] = {q, w}
      end
    end
    if total == 0 then return nil, nil end
    local x = rnd * total
    rnd = (rnd * 9301 + 0.49297) % 1
    for _, a in ipairs(avail) do
      x = x - a[2]
      if x < 0 then return a[1], pick_in(a[1]) end
    end
    local last = avail[#avail][1]
    return last, pick_in(last)
  end
  -- strict: aging across every queue first, then queue order, then priority
  if aging_ms > 0 then
    local bq, bp, bs = nil, nil, nil
    for q = 1, nq do
      local p, s = pick_in(q)
      if p and s and (not bs or s < bs) then bq, bp, bs = q, p, s end
    end
    if bq then return bq, bp end
  end
  for q = 1, nq do
    local p = pick_in(q)
    if p then return q, p end
  end
  return nil, nil
end

local fetched = {}
local got = 0
local guard = 0
while got < n_fetch and guard < n_fetch + 100 do
  guard = guard + 1
  local q, p = pick()
  if not q then break end
  local popped = redis.call('ZPOPMIN', ready(q, p))
  local id, score = popped[1], popped[2]
  if not id then break end
  local jk = K(q, 16) .. id
  if redis.call('EXISTS', jk) == 1 then
    local deliveries = redis.call('HINCRBY', jk, 'deliveries', 1)
    if deliveries > max_deliveries then
      to_dead(q, id, jk, 'poison',
        'delivered ' .. (deliveries - 1) .. ' times without finishing', '')
    else
      local token = redis.call('HINCRBY', jk, 'epoch', 1)
      redis.call('ZADD', K(q, 12), now + lease_ms, id)
      redis.call('HSET', jk, 'status', 'active', 'worker', worker, 'started_at', now,
        'ready_at', score, 'token', token)
      redis.call('PEXPIRE', jk, job_ttl)
      local f = redis.call('HMGET', jk, 'envelope', 'attempt')
      fetched[#fetched + 1] = tostring(q)
      fetched[#fetched + 1] = id
      fetched[#fetched + 1] = f[1] or ''
      fetched[#fetched + 1] = f[2] or '1'
      fetched[#fetched + 1] = tostring(deliveries)
      fetched[#fetched + 1] = tostring(token)
      got = got + 1
    end
  else
    redis.call('HINCRBY', K(q, 14), 'missing', 1)
  end
end

-- Nothing left to fetch: wake tokens of empty queues are stale; drop them so idle
-- workers do not wake up for nothing (a new enqueue pushes a fresh one).
if got < n_fetch then
  for q = 1, nq do
    local empty = true
    for p = 1, 10 do
      if redis.call('ZCARD', ready(q, p)) > 0 then empty = false break end
    end
    if empty then redis.call('DEL', K(q, 15)) end
  end
end

local next_due = -1
for q = 1, nq do
  local s = head(K(q, 11))
  if s and (next_due < 0 or s < next_due) then next_due = s end
end
return {acks, fetched, tostring(next_due), tostring(now)}
