-- How many writers are in flight: those whose lease has not run out (the rest are dropped).
-- KEYS: gc writers zset. Returns the count.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZCARD', KEYS[1])
