--[[ renew: extend the leases a worker still holds, in one call for all its jobs.
Called from the worker's renewal thread (its own connection), so it keeps ticking
while a handler hogs the event loop or the GIL-free CPU.

KEYS: one queue block per served queue
ARGV: lease_ms, then from ARGV_TAIL triples: queue index, job id, token
Returns: 1/0 per triple (0: the lease is gone or the token changed; the job's
         final ack will be refused, another worker may run it)
]]
local deadline = now + lease_ms
local out = {}
for i = ARGV_TAIL, #ARGV, 3 do
  local q = tonumber(ARGV[i])
  local id = ARGV[i + 1]
  local ok = 0
  if redis.call('HGET', K(q, JOB_PREFIX) .. id, 'token') == ARGV[i + 2]
      and redis.call('ZSCORE', K(q, LEASES), id) then
    redis.call('ZADD', K(q, LEASES), 'XX', deadline, id)
    ok = 1
  end
  out[#out + 1] = ok
end
return out
