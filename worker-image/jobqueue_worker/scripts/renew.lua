--[[ renew: extend the leases a worker still holds, in one call for all its jobs.
Called from the worker's renewal thread (its own connection), so it keeps ticking
while a handler hogs the event loop or the GIL-free CPU.

KEYS: the 19-key block of each served queue (see step.lua)
ARGV: [1] lease ms, then triples: queue index, job id, token
Returns: 1/0 per triple (0: the lease is gone or the token changed; the job's
         final ack will be refused, another worker may run it)
]]
local QK = 19
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local deadline = now + tonumber(ARGV[1])
local out = {}
for i = 2, #ARGV, 3 do
  local base = (tonumber(ARGV[i]) - 1) * QK
  local id = ARGV[i + 1]
  local ok = 0
  if redis.call('HGET', KEYS[base + 16] .. id, 'token') == ARGV[i + 2]
      and redis.call('ZSCORE', KEYS[base + 12], id) then
    redis.call('ZADD', KEYS[base + 12], 'XX', deadline, id)
    ok = 1
  end
  out[#out + 1] = ok
end
return out
