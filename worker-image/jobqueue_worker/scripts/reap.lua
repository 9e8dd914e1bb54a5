--[[ reap: return jobs whose lease expired (their worker died or hung) to the front
of their band; a job whose worker died max_deliveries times goes to the DLQ (poison).
Gated by SET NX PX so one worker per interval does the work; bounded per call.

KEYS: one queue block (KEY_* locals)
ARGV: named in jobqueue_worker/lua.py (REAP); worker_id owns the gate (for debugging)
Returns: {requeued, dead} or {-1, -1} when another worker holds the gate.
]]
if not redis.call('SET', KEY_REAPER, worker_id, 'NX', 'PX', gate_ms) then
  return {-1, -1}
end
local expired = redis.call('ZRANGEBYSCORE', KEY_LEASES, '-inf', now, 'LIMIT', 0, reap_batch)
local requeued, dead = 0, 0
for _, id in ipairs(expired) do
  local jk = KEY_JOB_PREFIX .. id
  local f = redis.call('HMGET', jk, 'priority', 'ready_at', 'deliveries')
  redis.call('ZREM', KEY_LEASES, id)
  if f[1] then
    redis.call('HINCRBY', KEY_COUNTERS, 'reaped', 1)
    local delivered = tonumber(f[3] or 0)
    if poisoned(delivered) then
      dead_letter(1, id, jk, 'poison',
        'lease expired after ' .. delivered .. ' deliveries without finishing', '')
      dead = dead + 1
    else
      redis.call('ZADD', ready_key(1, f[1]), tonumber(f[2]) or now, id)
      redis.call('HSET', jk, 'status', 'queued')
      redis.call('PEXPIRE', jk, job_ttl_ms)
      wake(1, 1)
      requeued = requeued + 1
    end
  end
end
return {requeued, dead}
