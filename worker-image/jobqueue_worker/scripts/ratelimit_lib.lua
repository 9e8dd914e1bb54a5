--[[ ratelimit_lib: shared by step.lua and ratelimit.lua (lua.py prepends it).
Mirrors jobqueue_worker/ratelimit.py (the tested specification); times in ms.
A limit is a table {kind, limit, period_ms, burst, key}:
  sliding: ZSET log of admission times, exact; admitted when fewer than `limit`
           entries lie in (now - period, now]
  bucket:  GCRA, one STRING (the theoretical arrival time); `burst` at once
           (0: `limit`), then one per period/limit
  fixed:   INCR + PEXPIRE counter, the window starting at its first admission
]]
-- Returns the wait (0: every limit admits) and the spacing of the slowest limit.
local function rl_check(lims, now)
  local retry, spacing = 0, 0
  for _, l in ipairs(lims) do
    local kind, n, per, burst, key = l[1], tonumber(l[2]), tonumber(l[3]), tonumber(l[4]), l[5]
    local r = 0
    if kind == 'sliding' then
      redis.call('ZREMRANGEBYSCORE', key, '-inf', now - per)
      local c = redis.call('ZCARD', key)
      if c >= n then
        local o = redis.call('ZRANGE', key, c - n, c - n, 'WITHSCORES')
        r = math.max(1, tonumber(o[2]) + per - now)
      end
    elseif kind == 'bucket' then
      local cap = n
      if burst > 0 then cap = burst end
      local tat = tonumber(redis.call('GET', key) or now)
      if tat < now then tat = now end
      local allow_at = tat - (cap - 1) * (per / n)
      if allow_at > now then r = math.max(1, math.ceil(allow_at - now)) end
    else
      local c = tonumber(redis.call('GET', key) or 0)
      local ttl = redis.call('PTTL', key)
      if ttl > 0 and c >= n then r = ttl end
    end
    if r > retry then retry, spacing = r, per / n end
  end
  return retry, spacing
end

local function rl_record(lims, now, member)
  for _, l in ipairs(lims) do
    local kind, n, per, key = l[1], tonumber(l[2]), tonumber(l[3]), l[5]
    if kind == 'sliding' then
      redis.call('ZADD', key, now, member)
      redis.call('PEXPIRE', key, per)
    elseif kind == 'bucket' then
      local tat = tonumber(redis.call('GET', key) or now)
      if tat < now then tat = now end
      tat = tat + per / n
      redis.call('SET', key, string.format('%.3f', tat), 'PX', math.ceil(tat - now) + 1)
    else
      local c = redis.call('INCR', key)
      if c == 1 or redis.call('PTTL', key) < 0 then redis.call('PEXPIRE', key, per) end
    end
  end
end

-- Current use of each limit (read-only but for trimming the sliding log), as
-- {used, capacity} pairs: admissions in the window, tokens spent, window count.
local function rl_usage(lims, now)
  local out = {}
  for _, l in ipairs(lims) do
    local kind, n, per, burst, key = l[1], tonumber(l[2]), tonumber(l[3]), tonumber(l[4]), l[5]
    local used, cap = 0, n
    if kind == 'sliding' then
      redis.call('ZREMRANGEBYSCORE', key, '-inf', now - per)
      used = redis.call('ZCARD', key)
    elseif kind == 'bucket' then
      if burst > 0 then cap = burst end
      local tat = tonumber(redis.call('GET', key) or now)
      if tat < now then tat = now end
      used = math.min(cap, math.ceil((tat - now) / (per / n) - 1e-9))
    else
      if redis.call('PTTL', key) > 0 then used = tonumber(redis.call('GET', key) or 0) end
    end
    out[#out + 1] = used
    out[#out + 1] = cap
  end
  return out
end
