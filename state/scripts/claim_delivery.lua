-- The build a webhook delivery stands for. KEYS: delivery key, push key. ARGV: new buildID, ttl s
-- Returns {buildID, 1 if new}: the build either key already names, or the new one under both.
local v = redis.call('GET', KEYS[1])
if not v then v = redis.call('GET', KEYS[2]) end
if v then
  redis.call('SET', KEYS[1], v, 'EX', ARGV[2], 'NX')
  redis.call('SET', KEYS[2], v, 'EX', ARGV[2], 'NX')
  return {v, 0}
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[2])
return {ARGV[1], 1}
