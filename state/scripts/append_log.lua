-- Append to a log up to a cap. KEYS: log. ARGV: text, cap
local len = redis.call('STRLEN', KEYS[1])
local cap = tonumber(ARGV[2])
if len >= cap then return len end
local text = ARGV[1]
if len + #text > cap then text = string.sub(text, 1, cap - len) .. '\n[log truncated]\n' end
return redis.call('APPEND', KEYS[1], text)
