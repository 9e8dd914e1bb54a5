--[[ replay: move dead-lettered jobs back to their original priority band, attempts
reset. A job not in the DLQ (already replayed, purged) is skipped, so replaying
the same job twice concurrently queues it once.

KEYS: the 19-key block of the queue (see step.lua)
ARGV: [1] job ttl ms, then job ids
Returns: the number of jobs replayed
]]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
-- A corrupt priority field must not index another key: fall back to NORMAL (5).
local function band(p)
  p = tonumber(p)
  if p == nil or p < 1 or p > 10 or p ~= math.floor(p) then return 5 end
  return p
end
local n = 0
for i = 2, #ARGV do
  local id = ARGV[i]
  local jk = KEYS[16] .. id
  if redis.call('ZREM', KEYS[13], id) == 1 then
    local p = redis.call('HGET', jk, 'priority')
    if p then
      redis.call('HSET', jk, 'status', 'queued', 'attempt', 1, 'deliveries', 0,
        'ready_at', now, 'replayed_at', now)
      redis.call('HINCRBY', jk, 'replays', 1)
      redis.call('ZADD', KEYS[band(p)], now, id)
      redis.call('PEXPIRE', jk, tonumber(ARGV[1]))
      redis.call('RPUSH', KEYS[15], '1')
      n = n + 1
    end
  end
end
if n > 0 then
  redis.call('LTRIM', KEYS[15], 0, 99)
  redis.call('PEXPIRE', KEYS[15], 60000)
end
return n
