--[[ step: apply finished jobs (ack/retry/dead/failed/release/defer), promote due
delayed jobs, then lease up to n_fetch ready jobs. Ack + next fetch is ONE round trip.

KEYS: one queue block per served queue (keys.QUEUE_BLOCK, offsets named in the
  generated header: K(q, DELAYED) ...), then the rate limiters' keys, then the
  limiter stats HASH last when rate_limits is not empty.
ARGV: named in jobqueue_worker/lua.py (STEP). Of note:
  rnd          random in [0,1) for the weighted pick (passed in so tests are exact)
  finish_ops   [{q, id, token, op: complete|retry|dead|failed|release|defer,
                 result?, duration_ms?, delay_ms?, error?, traceback?, reason?}]
  weights      per-queue weights ([] in strict mode)
  rate_limits  job type -> [{kind, limit, period_ms, burst, key index}] ({}: none)
  caps         this worker's free slots per capped job type ({}: no caps)
  pod_name     a Pod listed in a served queue's drain hash fetches nothing ('': none)
Rate limits (ratelimit_lib.lua) are admission control inside the fetch: a popped
job whose type is over a limit goes to `delayed` for its retry-after (spread by
the limit's spacing) WITHOUT counting a delivery or an attempt, and the fetch goes
on with the next job, so other types are not blocked. At most 100 are deferred.
Returns: {acks, fetched, next_due_ms, now_ms, throttled, drained (1/0)}
  acks: 1/0 per finish op (0: the fencing token no longer matches; ignored)
  fetched: flat list of 7 per job: queue index, id, envelope, attempt, deliveries,
           token, job type (as the producer stored it; '' if it did not)
  next_due_ms: earliest delayed due time over the queues, or -1
  throttled: flat list of 3 per deferred job type: queue index, type, count
]]
local has_limits = next(rate_limits) ~= nil
local rl_stats = KEYS[#KEYS]
if has_limits then
  for _, lims in pairs(rate_limits) do
    for _, l in ipairs(lims) do l[5] = KEYS[tonumber(l[5])] end
  end
end

-- 1. finished jobs
local acks = {}
-- Completions are counted once per queue per call, not once per job.
local completed, completed_ms = {}, {}
local FINISH = {complete = true, retry = true, dead = true, failed = true, defer = true,
  release = true}
for i, op in ipairs(finish_ops) do
  local q = tonumber(op.q)
  local id = op.id
  local jk = K(q, JOB_PREFIX) .. id
  local f = redis.call('HMGET', jk, 'token', 'priority', 'ready_at')
  local ok = 0
  if f[1] and f[1] == tostring(op.token) and FINISH[op.op] then
    -- ZREM's reply says whether the lease was still there: a removal and its check
    -- in one call. Every op ends the lease, so removing it first changes nothing.
    local held = redis.call('ZREM', K(q, LEASES), id) == 1
    -- Reaped but not yet fetched again: the late ack still wins (saves a duplicate).
    local reaped = (not held) and f[2] and redis.call('ZREM', ready_key(q, f[2]), id) == 1
    if held or reaped then
      ok = 1
      local dur = tonumber(op.duration_ms or 0)
      if op.op == 'complete' then
        -- An empty token retires this delivery's token in the same write (no HDEL).
        redis.call('HSET', jk, 'status', 'completed', 'finished_at', now,
          'duration_ms', dur, 'result', op.result or 'null', 'worker', worker_id, 'token', '')
        redis.call('PEXPIRE', jk, result_ttl_ms)
        completed[q] = (completed[q] or 0) + 1
        completed_ms[q] = (completed_ms[q] or 0) + dur
      elseif op.op == 'retry' then
        local due = now + tonumber(op.delay_ms or 0)
        redis.call('ZADD', K(q, DELAYED), due, id)
        redis.call('HINCRBY', jk, 'attempt', 1)
        redis.call('HSET', jk, 'status', 'retry_scheduled', 'deliveries', 0, 'due_at', due,
          'last_failed_at', now, 'error', op.error or '', 'traceback', op.traceback or '',
          'duration_ms', dur)
        redis.call('HSETNX', jk, 'first_failed_at', now)
        redis.call('PEXPIRE', jk, job_ttl_ms + tonumber(op.delay_ms or 0))
        redis.call('HINCRBY', K(q, COUNTERS), 'failed', 1)
        redis.call('HINCRBY', K(q, COUNTERS), 'retried', 1)
        redis.call('HINCRBY', K(q, COUNTERS), 'busy_ms', dur)
        wake(q, 1)
      elseif op.op == 'dead' then
        if op.reason == 'exception' or op.reason == 'permanent' then
          redis.call('HINCRBY', K(q, COUNTERS), 'failed', 1)
          redis.call('HINCRBY', K(q, COUNTERS), 'busy_ms', dur)
        end
        redis.call('HSET', jk, 'duration_ms', dur)
        dead_letter(q, id, jk, op.reason, op.error, op.traceback)
      elseif op.op == 'failed' then
        redis.call('HSET', jk, 'status', 'failed', 'finished_at', now, 'last_failed_at', now,
          'duration_ms', dur, 'error', op.error or '', 'traceback', op.traceback or '')
        redis.call('HSETNX', jk, 'first_failed_at', now)
        redis.call('PEXPIRE', jk, result_ttl_ms)
        redis.call('HINCRBY', K(q, COUNTERS), 'failed', 1)
        redis.call('HINCRBY', K(q, COUNTERS), 'busy_ms', dur)
      elseif op.op == 'defer' then
        -- Not run (the expected-memory pre-check): back to delayed, no delivery,
        -- no attempt.
        local due = now + tonumber(op.delay_ms or 0)
        redis.call('ZADD', K(q, DELAYED), due, id)
        redis.call('HINCRBY', jk, 'deliveries', -1)
        redis.call('HSET', jk, 'status', 'deferred', 'due_at', due)
        redis.call('HINCRBY', K(q, COUNTERS), 'deferred', 1)
        wake(q, 1)
      elseif op.op == 'release' then
        -- Handed back at shutdown: front of its band, and the delivery does not count.
        redis.call('ZADD', ready_key(q, f[2]), tonumber(f[3]) or now, id)
        redis.call('HINCRBY', jk, 'deliveries', -1)
        redis.call('HSET', jk, 'status', 'queued')
        wake(q, 1)
      end
      -- This delivery is over: a repeated or stale ack of it must never count
      -- again (e.g. a retried reply-lost ack after the retry was promoted).
      if op.op ~= 'complete' then redis.call('HDEL', jk, 'token') end
    end
  end
  acks[i] = ok
end
for q, n in pairs(completed) do
  redis.call('HINCRBY', K(q, COUNTERS), 'completed', n)
  redis.call('HINCRBY', K(q, COUNTERS), 'busy_ms', completed_ms[q])
end

-- 2. promote due delayed jobs (bounded per call)
for q = 1, n_queues do
  local due = redis.call('ZRANGEBYSCORE', K(q, DELAYED), '-inf', now, 'WITHSCORES', 'LIMIT', 0, promote_batch)
  for j = 1, #due, 2 do
    local id, score = due[j], due[j + 1]
    local p = redis.call('HGET', K(q, JOB_PREFIX) .. id, 'priority')
    redis.call('ZREM', K(q, DELAYED), id)
    if p then
      redis.call('ZADD', ready_key(q, p), score, id)
      redis.call('HSET', K(q, JOB_PREFIX) .. id, 'status', 'queued', 'ready_at', score)
    end
  end
end

-- 3. pick and lease up to n_fetch jobs, unless the operator chose this Pod to go
local drained = 0
if pod_name ~= '' then
  for q = 1, n_queues do
    if redis.call('HEXISTS', K(q, DRAIN), pod_name) == 1 then
      drained = 1
      n_fetch = 0
      break
    end
  end
end

-- The job's type, as the producer stored it next to the envelope.
local function job_type(jk) return redis.call('HGET', jk, 'type') or nil end

-- Per-type concurrency of THIS worker: a job whose type has no free slot here
-- stays where it is (another worker may take it); the fetch looks past it at
-- most 50 deep in its band, and a band with nothing eligible counts as empty
-- for the rest of this call.
local has_caps = next(caps) ~= nil
local blocked = {}
-- Bands found empty stay empty for the rest of this call (nothing is added to a
-- ready band after the promotions above), so each is counted at most once: a
-- NORMAL job no longer costs a ZCARD of every band above it.
local empty = {}
local function has_jobs(key)
  if blocked[key] or empty[key] then return false end
  if redis.call('ZCARD', key) > 0 then return true end
  empty[key] = true
  return false
end
-- In strict order without aging or caps the next jobs of a call are the head of
-- one band, so one ZPOPMIN takes as many as the call still wants. They wait here,
-- out of every set, and the loop below handles each one before it picks again
-- (never more than it has iterations left, so none can be left out).
local batch = mode ~= 'weighted' and aging_ms == 0 and not has_caps
local popped, popped_i, popped_q = {}, 1, nil
local function take(q, p, want)
  local key = ready_key(q, p)
  if batch then
    popped = redis.call('ZPOPMIN', key, want)
    popped_i, popped_q = 3, q
    if #popped < 2 * want then empty[key] = true end
    return popped[1], popped[2], nil
  end
  if not has_caps then
    local one = redis.call('ZPOPMIN', key)
    return one[1], one[2], nil
  end
  local cand = redis.call('ZRANGE', key, 0, 49, 'WITHSCORES')
  for j = 1, #cand, 2 do
    local id = cand[j]
    local jt = job_type(K(q, JOB_PREFIX) .. id)
    local c = jt and caps[jt]
    if c == nil or c > 0 then
      redis.call('ZREM', key, id)
      return id, cand[j + 1], jt
    end
  end
  blocked[key] = true
  return nil, nil, nil
end
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
      local key = ready_key(q, p)
      local s = (not blocked[key]) and (not empty[key]) and head(key)
      if s == nil then empty[key] = true end
      if s and s <= now - aging_ms and (not best_score or s < best_score) then
        best, best_score = p, s
      end
    end
    if best then return best, best_score end
  end
  for p = 1, 10 do
    if has_jobs(ready_key(q, p)) then return p, nil end
  end
  return nil, nil
end

local function pick()
  if mode == 'weighted' then
    local total, avail = 0, {}
    for q = 1, n_queues do
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
    for q = 1, n_queues do
      local p, s = pick_in(q)
      if p and s and (not bs or s < bs) then bq, bp, bs = q, p, s end
    end
    if bq then return bq, bp end
  end
  for q = 1, n_queues do
    local p = pick_in(q)
    if p then return q, p end
  end
  return nil, nil
end

local denied, nthrottled, throttled = {}, {}, {}

local function throttle(q, id, jk, jt)
  local lims = jt and rate_limits[jt]
  if not lims then return false end
  local d = denied[jt]
  if not d then
    local retry, spacing = rl_check(lims, now)
    if retry == 0 then
      rl_record(lims, now, now .. ':' .. id)
      redis.call('HINCRBY', rl_stats, jt .. ':admitted', 1)
      return false
    end
    d = {retry, spacing}
    denied[jt] = d
  end
  local k = nthrottled[jt] or 0
  nthrottled[jt] = k + 1
  local due = now + d[1] + math.floor(k * d[2])
  redis.call('ZADD', K(q, DELAYED), due, id)
  redis.call('HSET', jk, 'status', 'throttled', 'due_at', due)
  redis.call('HINCRBY', K(q, COUNTERS), 'throttled', 1)
  redis.call('HINCRBY', rl_stats, jt .. ':throttled', 1)
  local tk = q .. '|' .. jt
  throttled[tk] = (throttled[tk] or 0) + 1
  return true
end

local fetched = {}
local leases = {}  -- queue index -> ZADD arguments, written once per queue
local got = 0
local guard = 0
while got < n_fetch and guard < n_fetch + 100 do
  guard = guard + 1
  local q, id, score, taken_type
  if popped_i < #popped then
    q, id, score = popped_q, popped[popped_i], popped[popped_i + 1]
    popped_i = popped_i + 2
  else
    local p
    q, p = pick()
    if not q then break end
    id, score, taken_type = take(q, p, math.min(n_fetch - got, n_fetch + 101 - guard))
    if not id and not has_caps then break end
  end
  local jk = id and (K(q, JOB_PREFIX) .. id)
  -- One read for the throttle check, the lease and the reply. Every stored job
  -- has these fields; a hash without any of them is checked with EXISTS.
  local f = id and redis.call('HMGET', jk, 'envelope', 'attempt', 'type', 'deliveries', 'epoch')
  local exists = id and (f[1] or f[2] or f[3] or f[4] or f[5] or redis.call('EXISTS', jk) == 1)
  local deferred = false
  if exists and has_limits then
    deferred = throttle(q, id, jk, f[3] or nil)
  end
  if not id then
    -- band blocked by this worker's per-type caps: pick again
  elseif deferred then
    -- moved to delayed; no delivery, no attempt
  elseif exists then
    local deliveries = (tonumber(f[4]) or 0) + 1
    if poisoned(deliveries - 1) then
      redis.call('HSET', jk, 'deliveries', deliveries)
      dead_letter(q, id, jk, 'poison',
        'delivered ' .. (deliveries - 1) .. ' times without finishing', '')
    else
      -- The fencing token: one more than any this job had, in the same write as
      -- the delivery count and the lease's bookkeeping.
      local token = (tonumber(f[5]) or 0) + 1
      if taken_type and caps[taken_type] then caps[taken_type] = caps[taken_type] - 1 end
      local lq = leases[q]
      if not lq then
        lq = {}
        leases[q] = lq
      end
      lq[#lq + 1] = now + lease_ms
      lq[#lq + 1] = id
      redis.call('HSET', jk, 'status', 'active', 'worker', worker_id, 'started_at', now,
        'ready_at', score, 'token', token, 'epoch', token, 'deliveries', deliveries)
      redis.call('PEXPIRE', jk, job_ttl_ms)
      fetched[#fetched + 1] = tostring(q)
      fetched[#fetched + 1] = id
      fetched[#fetched + 1] = f[1] or ''
      fetched[#fetched + 1] = f[2] or '1'
      fetched[#fetched + 1] = tostring(deliveries)
      fetched[#fetched + 1] = tostring(token)
      fetched[#fetched + 1] = f[3] or ''
      got = got + 1
    end
  else
    redis.call('HINCRBY', K(q, COUNTERS), 'missing', 1)
  end
end
for q, lq in pairs(leases) do redis.call('ZADD', K(q, LEASES), unpack(lq)) end

-- Nothing left to fetch: wake tokens of empty queues are stale; drop them so idle
-- workers do not wake up for nothing (a new enqueue pushes a fresh one).
if got < n_fetch then
  for q = 1, n_queues do
    local none = true
    for p = 1, 10 do
      if has_jobs(ready_key(q, p)) then
        none = false
        break
      end
    end
    if none then redis.call('DEL', K(q, WAKE)) end
  end
end

local next_due = -1
for q = 1, n_queues do
  local s = head(K(q, DELAYED))
  if s and (next_due < 0 or s < next_due) then next_due = s end
end
local thr = {}
for tk, n in pairs(throttled) do
  local sep = string.find(tk, '|', 1, true)
  thr[#thr + 1] = string.sub(tk, 1, sep - 1)
  thr[#thr + 1] = string.sub(tk, sep + 1)
  thr[#thr + 1] = n
end
return {acks, fetched, tostring(next_due), tostring(now), thr, drained}
