-- A region's job ended. KEYS: build, statuscount, the region's row, the region's job queue, then
-- the rows of every region of the build.
-- ARGV: buildID, ok ('1'/'0'), row fields json, now, reason
-- Returns the build's status after it: SUCCEEDED once every row is REPLICATED, FAILED on a
-- failed region; unchanged if the build is no longer DEPLOYING (cancelled meanwhile).
if redis.call('EXISTS', KEYS[1]) == 0 then return '' end
for k, v in pairs(cjson.decode(ARGV[3])) do redis.call('HSET', KEYS[3], k, v) end
redis.call('HSET', KEYS[3], 'updatedAt', ARGV[4])
redis.call('ZREM', KEYS[4], ARGV[1])
local st = redis.call('HGET', KEYS[1], 'buildStatus')
if st ~= '${BuildStatus.DEPLOYING}' then return st end
if ARGV[2] == '0' then
  redis.call('HSET', KEYS[1], 'buildStatus', '${BuildStatus.FAILED}', 'error', ARGV[5], 'finishedAt', ARGV[4],
             'replicationFailed', '1')
  redis.call('HINCRBY', KEYS[2], '${BuildStatus.DEPLOYING}', -1)
  redis.call('HINCRBY', KEYS[2], '${BuildStatus.FAILED}', 1)
  return '${BuildStatus.FAILED}'
end
for i = 5, #KEYS do
  if redis.call('HGET', KEYS[i], 'replicationStatus') ~= '${ReplicationStatus.REPLICATED}' then
    return '${BuildStatus.DEPLOYING}'
  end
end
redis.call('HSET', KEYS[1], 'buildStatus', '${BuildStatus.SUCCEEDED}', 'finishedAt', ARGV[4])
redis.call('HINCRBY', KEYS[2], '${BuildStatus.DEPLOYING}', -1)
redis.call('HINCRBY', KEYS[2], '${BuildStatus.SUCCEEDED}', 1)
return '${BuildStatus.SUCCEEDED}'
