--[[ ratelimit: a handler-side limiter (RateLimiter), or a usage read.
Prefixed with ratelimit_lib.lua by the loader.

KEYS: one key per limit, in the order of limits
ARGV: op (acquire|usage), member (acquire: unique per request),
      limits: JSON array of {kind, limit, period_ms, burst}
Returns: acquire: {1, 0} admitted, or {0, retry_ms}
         usage: flat {used, capacity} per limit
]]
for i, l in ipairs(limits) do l[5] = KEYS[i] end
if op == 'usage' then return rl_usage(limits, now) end
local retry = rl_check(limits, now)
if retry > 0 then return {0, retry} end
rl_record(limits, now, member)
return {1, 0}
