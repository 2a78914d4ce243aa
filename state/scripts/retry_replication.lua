-- A region's job failed and will be tried again: its row RETRYING, if gantry.statuses'
-- REPLICATION_FROM allows it from where the row is, and the job queued for later.
-- KEYS: the row, the region's job queue. ARGV: buildID, ready at ms, error, now.
-- Returns 1 if retried, 0 if the row may not (it ended meanwhile).
local cur = redis.call('HGET', KEYS[1], 'replicationStatus')
if not may(${FROM.ReplicationStatus}, cur, '${ReplicationStatus.RETRYING}') then return 0 end
redis.call('HINCRBY', KEYS[1], 'retries', 1)
redis.call('HSET', KEYS[1], 'replicationStatus', '${ReplicationStatus.RETRYING}', 'error', ARGV[3], 'updatedAt', ARGV[4])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
return 1
