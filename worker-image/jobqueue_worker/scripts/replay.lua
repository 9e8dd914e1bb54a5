--[[ replay: move dead-lettered jobs back to their original priority band, attempts
reset. A job not in the DLQ (already replayed, purged) is skipped, so replaying
the same job twice concurrently queues it once.

KEYS: one queue block (KEY_* locals)
ARGV: job_ttl_ms, then from ARGV_TAIL the job ids
Returns: the number of jobs replayed
]]
local n = 0
for i = ARGV_TAIL, #ARGV do
  local id = ARGV[i]
  local jk = KEY_JOB_PREFIX .. id
  if redis.call('ZREM', KEY_DEAD, id) == 1 then
    local p = redis.call('HGET', jk, 'priority')
    if p then
      redis.call('HSET', jk, 'status', 'queued', 'attempt', 1, 'deliveries', 0,
        'ready_at', now, 'replayed_at', now)
      redis.call('HINCRBY', jk, 'replays', 1)
      redis.call('ZADD', ready_key(1, p), now, id)
      redis.call('PEXPIRE', jk, job_ttl_ms)
      n = n + 1
    end
  end
end
if n > 0 then wake(1, n) end
return n
