-- Retention lets a build go: SUCCEEDED -> EXPIRED, unless it is pinned or desired now (checked here,
-- atomically with create_deployment.lua and pin_build.lua, so nothing can start using it meanwhile).
-- KEYS: build, the project's desired state, statuscount, audit keys (4)
-- ARGV: now, reason, audit entry
-- Returns {1, ''} or {0, why not}.
local cur = redis.call('HGET', KEYS[1], 'buildStatus')
if not cur then return {0, 'no such build'} end
if not may(${FROM.BuildStatus}, cur, '${BuildStatus.EXPIRED}') then return {0, 'build is ' .. cur} end
if redis.call('HGET', KEYS[1], 'pinned') == '1' then return {0, 'pinned'} end
local id = redis.call('HGET', KEYS[1], 'buildID')
if redis.call('HGET', KEYS[2], 'buildID') == id then return {0, 'desired'} end
redis.call('HSET', KEYS[1], 'buildStatus', '${BuildStatus.EXPIRED}', 'expiredAt', ARGV[1], 'expiredReason', ARGV[2])
redis.call('HINCRBY', KEYS[3], cur, -1)
redis.call('HINCRBY', KEYS[3], '${BuildStatus.EXPIRED}', 1)
audit(ARGV[3], 4)
return {1, ''}
