--[[ heartbeat: store a worker's heartbeat with seen_at on Redis's clock, and drop
entries of workers silent for longer than the stale limit (bounded by worker count).

KEYS: the workers HASH of each served queue
ARGV: worker_id, body_json (a JSON object without seen_at), stale_s
Returns: Redis time in seconds (string)
]]
local value = '{"seen_at":' .. string.format('%.6f', now_s) .. ',' .. string.sub(body_json, 2)
for _, key in ipairs(KEYS) do
  redis.call('HSET', key, worker_id, value)
  local all = redis.call('HGETALL', key)
  for i = 1, #all, 2 do
    local ok, hb = pcall(cjson.decode, all[i + 1])
    if (not ok) or type(hb) ~= 'table' or tonumber(hb.seen_at or 0) < now_s - stale_s then
      redis.call('HDEL', key, all[i])
    end
  end
end
return string.format('%.6f', now_s)
