-- A retried build whose backoff has passed goes back onto the queue.
-- KEYS: delayed, queue, seq, build. ARGV: buildID. Returns 1 if queued.
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
if redis.call('HGET', KEYS[4], 'buildStatus') ~= '${BuildStatus.QUEUED}' then return 0 end
local seq = redis.call('INCR', KEYS[3])
redis.call('ZADD', KEYS[2], tonumber(redis.call('HGET', KEYS[4], 'queueBase')) + seq, ARGV[1])
return 1
