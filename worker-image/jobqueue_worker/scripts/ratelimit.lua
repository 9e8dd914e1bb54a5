--[[ ratelimit: a handler-side limiter (RateLimiter), or a usage read.
Prefixed with ratelimit_lib.lua by the broker.

KEYS: one key per limit, in the order of ARGV[3]
ARGV: [1] op: acquire|usage  [2] member (acquire: unique per request)
      [3] limits JSON array of {kind, limit, period_ms, burst}
Returns: acquire: {1, 0} admitted, or {0, retry_ms}
         usage: flat {used, capacity} per limit
]]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lims = cjson.decode(ARGV[3])
for i, l in ipairs(lims) do l[5] = KEYS[i] end
if ARGV[1] == 'usage' then return rl_usage(lims, now) end
local retry = rl_check(lims, now)
if retry > 0 then return {0, retry} end
rl_record(lims, now, ARGV[2])
return {1, 0}
