--[[ heartbeat: store a worker's heartbeat with seen_at on Redis's clock, and drop
entries of workers silent for longer than the stale limit (bounded by worker count).

KEYS: the workers HASH of each served queue
ARGV: [1] worker id  [2] heartbeat JSON object without seen_at  [3] stale after s
Returns: Redis time in seconds (string)
]]
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local stale = tonumber(ARGV[3])
local value = '{"seen_at":' .. string.format('%.6f', now) .. ',' .. string.sub(ARGV[2], 2)
for _, key in ipairs(KEYS) do
  redis.call('HSET', key, ARGV[1], value)
  local all = redis.call('HGETALL', key)
  for i = 1, #all, 2 do
    local ok, hb = pcall(cjson.decode, all[i + 1])
    if (not ok) or type(hb) ~= 'table' or tonumber(hb.seen_at or 0) < now - stale then
      redis.call('HDEL', key, all[i])
    end
  end
end
return string.format('%.6f', now)
