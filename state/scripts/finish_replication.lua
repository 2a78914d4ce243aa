-- A region's job ended. KEYS: build, statuscount, the region's row, the region's job queue, then
-- the rows of every region of the build, then the events stream.
-- ARGV: buildID, ok ('1'/'0'), row fields json, now, reason
-- Returns the build's status after it: SUCCEEDED once every row is REPLICATED, FAILED on a
-- failed region; unchanged if the build is no longer DEPLOYING (cancelled meanwhile).
-- The row's and the build's moves are those gantry.statuses' tables allow: a row that may not
-- take the new status (a job that ended twice) changes nothing.
if redis.call('EXISTS', KEYS[1]) == 0 then return '' end
local fields = cjson.decode(ARGV[3])
if not may(${FROM.ReplicationStatus}, redis.call('HGET', KEYS[3], 'replicationStatus'), fields['replicationStatus']) then
  return redis.call('HGET', KEYS[1], 'buildStatus')
end
for k, v in pairs(fields) do redis.call('HSET', KEYS[3], k, v) end
redis.call('HSET', KEYS[3], 'updatedAt', ARGV[4])
redis.call('ZREM', KEYS[4], ARGV[1])
local st = redis.call('HGET', KEYS[1], 'buildStatus')
if st ~= '${BuildStatus.DEPLOYING}' then return st end
if ARGV[2] == '0' and may(${FROM.BuildStatus}, st, '${BuildStatus.FAILED}') then
  redis.call('HSET', KEYS[1], 'buildStatus', '${BuildStatus.FAILED}', 'error', ARGV[5], 'finishedAt', ARGV[4],
             'replicationFailed', '1')
  redis.call('HINCRBY', KEYS[2], '${BuildStatus.DEPLOYING}', -1)
  redis.call('HINCRBY', KEYS[2], '${BuildStatus.FAILED}', 1)
  emit('build', ARGV[1], redis.call('HGET', KEYS[1], 'projectName'), '${BuildStatus.FAILED}', st)
  return '${BuildStatus.FAILED}'
end
for i = 5, #KEYS - 1 do
  if redis.call('HGET', KEYS[i], 'replicationStatus') ~= '${ReplicationStatus.REPLICATED}' then
    return '${BuildStatus.DEPLOYING}'
  end
end
if ARGV[2] == '0' or not may(${FROM.BuildStatus}, st, '${BuildStatus.SUCCEEDED}') then return st end
redis.call('HSET', KEYS[1], 'buildStatus', '${BuildStatus.SUCCEEDED}', 'finishedAt', ARGV[4])
redis.call('HINCRBY', KEYS[2], '${BuildStatus.DEPLOYING}', -1)
redis.call('HINCRBY', KEYS[2], '${BuildStatus.SUCCEEDED}', 1)
emit('build', ARGV[1], redis.call('HGET', KEYS[1], 'projectName'), '${BuildStatus.SUCCEEDED}', st)
return '${BuildStatus.SUCCEEDED}'
