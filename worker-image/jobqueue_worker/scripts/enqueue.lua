--[[ enqueue: store jobs of ONE queue and make them ready or delayed, atomically.
An idempotency key seen within its TTL returns the first job's id and enqueues nothing.

KEYS: one queue block (KEY_* locals)
ARGV: job_ttl_ms, idem_ttl_ms, then from ARGV_TAIL 8 per job: id, envelope JSON,
      priority, max attempts, delay ms, run-at ms (0: none), idem key ("": none),
      job type (stored next to the envelope, so no script has to decode it)
Returns: flat list of 2 per job: id (the existing one for a duplicate), 1 if created else 0
]]
local out = {}
local created, ready_n = 0, 0
-- FIFO within a priority even for jobs enqueued in the same millisecond: scores
-- advance by at least 1 microsecond per job (kept as an integer in counters).
local last_us = tonumber(redis.call('HGET', KEY_COUNTERS, 'last_ready_us') or 0)
for i = ARGV_TAIL, #ARGV, 8 do
  local id, env, prio = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  local delay, at, idem = tonumber(ARGV[i + 4]), tonumber(ARGV[i + 5]), ARGV[i + 6]
  local existing = nil
  if redis.call('EXISTS', KEY_JOB_PREFIX .. id) == 1 then existing = id end
  if (not existing) and idem ~= '' then
    if not redis.call('SET', KEY_IDEM_PREFIX .. idem, id, 'NX', 'PX', idem_ttl_ms) then
      existing = redis.call('GET', KEY_IDEM_PREFIX .. idem)
    end
  end
  if existing then
    out[#out + 1] = existing
    out[#out + 1] = 0
  else
    local due = now
    if at > 0 then due = at elseif delay > 0 then due = now + delay end
    local jk = KEY_JOB_PREFIX .. id
    local ready_at = due
    if due <= now then
      last_us = math.max(now * 1000, last_us + 1)
      ready_at = last_us / 1000
    end
    redis.call('HSET', jk, 'envelope', env, 'type', ARGV[i + 7], 'priority', prio,
      'attempt', 1, 'max_attempts', ARGV[i + 3], 'deliveries', 0, 'epoch', 0,
      'enqueued_at', now, 'ready_at', ready_at, 'idem', idem, 'status', 'queued')
    if due > now then
      redis.call('HSET', jk, 'due_at', due)
      redis.call('ZADD', KEY_DELAYED, due, id)
    else
      redis.call('ZADD', ready_key(1, prio), ready_at, id)
      ready_n = ready_n + 1
    end
    redis.call('PEXPIRE', jk, job_ttl_ms + math.max(0, due - now))
    created = created + 1
    out[#out + 1] = id
    out[#out + 1] = 1
  end
end
-- Once per call, not per job: the counter, the FIFO cursor, and the wake tokens.
if created > 0 then redis.call('HINCRBY', KEY_COUNTERS, 'enqueued', created) end
if ready_n > 0 then
  redis.call('HSET', KEY_COUNTERS, 'last_ready_us', string.format('%d', last_us))
  wake(1, ready_n)
end
return out
