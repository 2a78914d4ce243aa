-- A worker's check-in. KEYS: build. ARGV: now ms (or '' to only check), lease owner
-- Returns the build's status, or AttemptEnd.LEASE_LOST if another attempt holds it.
local cur = redis.call('HGET', KEYS[1], 'buildStatus')
if cur == '${BuildStatus.BUILDING}' and redis.call('HGET', KEYS[1], 'leaseOwner') ~= ARGV[2] then return '${AttemptEnd.LEASE_LOST}' end
if cur == '${BuildStatus.BUILDING}' and ARGV[1] ~= '' then redis.call('HSET', KEYS[1], 'lastHeartbeat', ARGV[1]) end
return cur
