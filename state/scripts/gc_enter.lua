-- A writer that may reuse stored chunks (a publish, a cache save) enters, unless a sweep is
-- deleting now; one already in renews its lease whatever happens (a sweep waits for it).
-- Times are the Redis server's, so writers and sweeper share one clock.
-- KEYS: gc writers zset, gc sweep lease. ARGV: writer ID, lease ms, '1' to renew.
-- Returns 1 if entered (or renewed), 0 if a sweep holds the store (or a renewed lease had run out).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if ARGV[3] == '1' then
  return redis.call('ZADD', KEYS[1], 'XX', 'CH', now + tonumber(ARGV[2]), ARGV[1])
end
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
return 1
