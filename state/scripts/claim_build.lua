-- Lease a build taken from the head of the queue. KEYS: queue, building, build, statuscount
-- ARGV: buildID, now ms, lease owner. Returns 1 if leased, 0 if the entry was stale (dropped),
-- -1 if another claimer took it first.
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return -1 end
local cur = redis.call('HGET', KEYS[3], 'buildStatus')
if not may(${FROM.BuildStatus}, cur, '${BuildStatus.BUILDING}') then return 0 end
redis.call('HSET', KEYS[3], 'buildStatus', '${BuildStatus.BUILDING}', 'leaseOwner', ARGV[3],
           'startedAt', ARGV[2], 'lastHeartbeat', ARGV[2])
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('HINCRBY', KEYS[4], cur, -1)
redis.call('HINCRBY', KEYS[4], '${BuildStatus.BUILDING}', 1)
return 1
