-- Take a token from a bucket. KEYS: bucket, and optionally a hash the caller reads next (the
-- project a request is about: one round trip, not two). ARGV: rate per s, burst (0: no bucket).
-- Returns {allowed 0/1, ms until a token is back, that hash's fields flat}. The refill uses
-- Redis's own clock.
local read = KEYS[2] and redis.call('HGETALL', KEYS[2]) or {}
if tonumber(ARGV[1]) <= 0 then return {1, 0, read} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local b = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(b[1]), tonumber(b[2])
if not tokens then tokens, at = burst, now end
tokens = math.min(burst, tokens + (now - at) * rate / 1000)
local ok, wait = 0, 0
if tokens >= 1 then
  tokens, ok = tokens - 1, 1
else
  wait = math.ceil((1 - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return {ok, wait, read}
