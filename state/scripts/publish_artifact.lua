-- The artifact is in the primary store: BUILDING -> DEPLOYING, one replication row per region
-- (the primary's already REPLICATED) and a job per other region, in one step.
-- KEYS: build, building, statuscount, the build's regions set, the primary's row, then for each
-- other region its row and its job queue, then the events stream.
-- ARGV: lease owner, fields json, now, primary region, other regions json, primary row json
-- Returns {1, DEPLOYING or SUCCEEDED (no other region)} or {0, current status}.
local cur = redis.call('HGET', KEYS[1], 'buildStatus')
local FROM = ${FROM.BuildStatus}
if not may(FROM, cur, '${BuildStatus.DEPLOYING}') or cur ~= '${BuildStatus.BUILDING}'
   or redis.call('HGET', KEYS[1], 'leaseOwner') ~= ARGV[1] then return {0, cur or ''} end
local id = redis.call('HGET', KEYS[1], 'buildID')
for k, v in pairs(cjson.decode(ARGV[2])) do redis.call('HSET', KEYS[1], k, v) end
redis.call('HSET', KEYS[1], 'buildStatus', '${BuildStatus.DEPLOYING}', 'leaseOwner', '')
redis.call('SREM', KEYS[2], id)
redis.call('HINCRBY', KEYS[3], '${BuildStatus.BUILDING}', -1)
local now = ARGV[3]
local primary = cjson.decode(ARGV[6])
redis.call('SADD', KEYS[4], ARGV[4])
redis.call('HSET', KEYS[5], 'region', ARGV[4], 'replicationStatus', '${ReplicationStatus.REPLICATED}',
           'createdAt', now, 'updatedAt', now, 'retries', 0, 'error', '',
           'bytesTransferred', primary['bytesTransferred'], 'chunksTransferred', primary['chunksTransferred'],
           'bytesSkipped', primary['bytesSkipped'], 'chunksSkipped', primary['chunksSkipped'])
local others = cjson.decode(ARGV[5])
for i, r in ipairs(others) do
  redis.call('SADD', KEYS[4], r)
  redis.call('HSET', KEYS[4 + 2 * i], 'region', r, 'replicationStatus', '${ReplicationStatus.PENDING}',
             'createdAt', now, 'updatedAt', now, 'retries', 0, 'error', '', 'bytesTransferred', 0,
             'chunksTransferred', 0, 'bytesSkipped', 0, 'chunksSkipped', 0)
  redis.call('ZADD', KEYS[5 + 2 * i], now, id)
end
if #others == 0 and may(FROM, '${BuildStatus.DEPLOYING}', '${BuildStatus.SUCCEEDED}') then
  redis.call('HSET', KEYS[1], 'buildStatus', '${BuildStatus.SUCCEEDED}', 'finishedAt', now)
  redis.call('HINCRBY', KEYS[3], '${BuildStatus.SUCCEEDED}', 1)
  emit('build', id, redis.call('HGET', KEYS[1], 'projectName'), '${BuildStatus.SUCCEEDED}', cur)
  return {1, '${BuildStatus.SUCCEEDED}'}
end
redis.call('HINCRBY', KEYS[3], '${BuildStatus.DEPLOYING}', 1)
emit('build', id, redis.call('HGET', KEYS[1], 'projectName'), '${BuildStatus.DEPLOYING}', cur)
return {1, '${BuildStatus.DEPLOYING}'}
