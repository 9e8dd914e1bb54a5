--[[ enqueue: store jobs of ONE queue and make them ready or delayed, atomically.
An idempotency key seen within its TTL returns the first job's id and enqueues nothing.

KEYS: the 19-key block of the queue (see step.lua)
ARGV: [1] job ttl ms  [2] idempotency ttl ms, then 7 per job:
      id, envelope JSON, priority, max attempts, delay ms, run-at ms (0: none), idem key ("": none)
Returns: flat list of 2 per job: id (the existing one for a duplicate), 1 if created else 0
]]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local job_ttl = tonumber(ARGV[1])
local idem_ttl = tonumber(ARGV[2])
local out = {}
local created, ready_n = 0, 0
-- FIFO within a priority even for jobs enqueued in the same millisecond: scores
-- advance by at least 1 microsecond per job (kept as an integer in counters).
local last_us = tonumber(redis.call('HGET', KEYS[14], 'last_ready_us') or 0)
for i = 3, #ARGV, 7 do
  local id, env, prio = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  local delay, at, idem = tonumber(ARGV[i + 4]), tonumber(ARGV[i + 5]), ARGV[i + 6]
  local existing = nil
  if redis.call('EXISTS', KEYS[16] .. id) == 1 then existing = id end
  if (not existing) and idem ~= '' then
    if not redis.call('SET', KEYS[17] .. idem, id, 'NX', 'PX', idem_ttl) then
      existing = redis.call('GET', KEYS[17] .. idem)
    end
  end
  if existing then
    out[#out + 1] = existing
    out[#out + 1] = 0
  else
    local due = now
    if at > 0 then due = at elseif delay > 0 then due = now + delay end
    local jk = KEYS[16] .. id
    if due > now then
      redis.call('HSET', jk, 'envelope', env, 'priority', prio, 'attempt', 1,
        'max_attempts', ARGV[i + 3], 'deliveries', 0, 'epoch', 0, 'enqueued_at', now,
        'ready_at', due, 'due_at', due, 'idem', idem, 'status', 'queued')
      redis.call('ZADD', KEYS[11], due, id)
    else
      last_us = math.max(now * 1000, last_us + 1)
      redis.call('HSET', jk, 'envelope', env, 'priority', prio, 'attempt', 1,
        'max_attempts', ARGV[i + 3], 'deliveries', 0, 'epoch', 0, 'enqueued_at', now,
        'ready_at', last_us / 1000, 'idem', idem, 'status', 'queued')
      redis.call('ZADD', KEYS[prio], last_us / 1000, id)
      ready_n = ready_n + 1
    end
    redis.call('PEXPIRE', jk, job_ttl + math.max(0, due - now))
    created = created + 1
    out[#out + 1] = id
    out[#out + 1] = 1
  end
end
-- Once per call, not per job: the counter, the FIFO cursor, and one wake token
-- per ready job (at most 100: enough to wake every idle worker) in one RPUSH.
if created > 0 then redis.call('HINCRBY', KEYS[14], 'enqueued', created) end
if ready_n > 0 then
  redis.call('HSET', KEYS[14], 'last_ready_us', string.format('%d', last_us))
  local tokens = {}
  for j = 1, math.min(ready_n, 100) do tokens[j] = '1' end
  if redis.call('RPUSH', KEYS[15], unpack(tokens)) > 100 then
    redis.call('LTRIM', KEYS[15], 0, 99)
  end
  redis.call('PEXPIRE', KEYS[15], 60000)
end
return out
