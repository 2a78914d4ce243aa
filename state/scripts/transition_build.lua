-- Move a build to another status if it is in one it may come from (and, for a worker, if it
-- holds the lease). KEYS: build, building, queue, delayed, seq, statuscount, audit keys (4), events
-- ARGV: to, (unused), lease owner ('' = any), fields json, delay-until ms, audit entry
-- Returns {1, from} or {0, current}. The moves allowed are gantry.statuses.BUILD_FROM's.
local cur = redis.call('HGET', KEYS[1], 'buildStatus')
if not cur then return {0, ''} end
if not may(${FROM.BuildStatus}, cur, ARGV[1]) then return {0, cur} end
if ARGV[3] ~= '' and redis.call('HGET', KEYS[1], 'leaseOwner') ~= ARGV[3] then return {0, cur} end
local to = ARGV[1]
redis.call('HSET', KEYS[1], 'buildStatus', to)
redis.call('HINCRBY', KEYS[6], cur, -1)
redis.call('HINCRBY', KEYS[6], to, 1)
for k, v in pairs(cjson.decode(ARGV[4])) do redis.call('HSET', KEYS[1], k, v) end
local id = redis.call('HGET', KEYS[1], 'buildID')
if to == '${BuildStatus.BUILDING}' then redis.call('SADD', KEYS[2], id) else redis.call('SREM', KEYS[2], id) end
redis.call('ZREM', KEYS[3], id)
redis.call('ZREM', KEYS[4], id)
if to == '${BuildStatus.QUEUED}' then
  local until_ms = tonumber(ARGV[5])
  if until_ms > 0 then
    redis.call('ZADD', KEYS[4], until_ms, id)
  else
    local seq = redis.call('INCR', KEYS[5])
    redis.call('ZADD', KEYS[3], tonumber(redis.call('HGET', KEYS[1], 'queueBase')) + seq, id)
  end
end
audit(ARGV[6], 7)
emit('build', id, redis.call('HGET', KEYS[1], 'projectName'), to, cur)
return {1, cur}
