-- A region that joined the stack after the build published gets a replication row and a job now,
-- if the build has an artifact that may still deploy (DEPLOYING or SUCCEEDED) and no row there.
-- KEYS: build, the build's regions set, the region's row, the region's job queue.
-- ARGV: buildID, region, now. Returns 1 if it queued a job.
local st = redis.call('HGET', KEYS[1], 'buildStatus')
if st ~= '${BuildStatus.DEPLOYING}' and st ~= '${BuildStatus.SUCCEEDED}' then return 0 end
if redis.call('SISMEMBER', KEYS[2], ARGV[2]) == 1 then return 0 end
redis.call('SADD', KEYS[2], ARGV[2])
redis.call('HSET', KEYS[3], 'region', ARGV[2], 'replicationStatus', '${ReplicationStatus.PENDING}',
           'createdAt', ARGV[3], 'updatedAt', ARGV[3], 'retries', 0, 'error', '', 'bytesTransferred', 0,
           'chunksTransferred', 0, 'bytesSkipped', 0, 'chunksSkipped', 0, 'backfill', '1')
redis.call('ZADD', KEYS[4], ARGV[3], ARGV[1])
return 1
