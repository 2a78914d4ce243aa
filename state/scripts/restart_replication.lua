-- Restart the regions whose replication gave up; a build that FAILED only for that is
-- DEPLOYING again. KEYS: build, statuscount, audit keys (4), then for each region (in ARGV[3]'s
-- order) its row and its job queue. ARGV: now, audit entry or '', regions json
-- Returns the regions restarted.
local id = redis.call('HGET', KEYS[1], 'buildID')
if not id then return {} end
local st = redis.call('HGET', KEYS[1], 'buildStatus')
if st ~= '${BuildStatus.DEPLOYING}' and not (st == '${BuildStatus.FAILED}' and redis.call('HGET', KEYS[1], 'replicationFailed') == '1'
                                            and may(${FROM.BuildStatus}, st, '${BuildStatus.DEPLOYING}')) then
  return {}
end
local restarted = {}
for i, r in ipairs(cjson.decode(ARGV[3])) do
  local row, q = KEYS[5 + 2 * i], KEYS[6 + 2 * i]
  if may(${FROM.ReplicationStatus}, redis.call('HGET', row, 'replicationStatus'), '${ReplicationStatus.PENDING}') then
    redis.call('HSET', row, 'replicationStatus', '${ReplicationStatus.PENDING}', 'retries', 0, 'error', '',
               'createdAt', ARGV[1], 'updatedAt', ARGV[1])
    redis.call('ZADD', q, ARGV[1], id)
    table.insert(restarted, r)
  end
end
if #restarted > 0 and st == '${BuildStatus.FAILED}' then
  redis.call('HSET', KEYS[1], 'buildStatus', '${BuildStatus.DEPLOYING}', 'error', '', 'replicationFailed', '0')
  redis.call('HDEL', KEYS[1], 'finishedAt')
  redis.call('HINCRBY', KEYS[2], '${BuildStatus.FAILED}', -1)
  redis.call('HINCRBY', KEYS[2], '${BuildStatus.DEPLOYING}', 1)
end
if #restarted > 0 then audit(ARGV[2], 3) end
return restarted
