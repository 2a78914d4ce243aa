-- The project's next queued deployment starts, once the desired one has ended.
-- KEYS: desired, the project's queue, the queue's head, the desired deployment as the caller read it
-- (or the head's key if none), the head's build, the events stream
-- ARGV: the head's ID, the desired deploymentID the caller read ('' if none), now, channel, the
-- build it now rolls back to ('' if none)
-- Returns 2 when the head started, 1 when the head was dropped (it no longer waits: aborted or
-- superseded), 0 when the desired one is still under way, -1 if the queue or desired changed.
if redis.call('LINDEX', KEYS[2], 0) ~= ARGV[1] then return -1 end
if (redis.call('HGET', KEYS[1], 'deploymentID') or '') ~= ARGV[2] then return -1 end
if ARGV[2] ~= '' then
  local st = redis.call('HGET', KEYS[4], 'status')
  if st == '${DeploymentStatus.IN_PROGRESS}' or st == '${DeploymentStatus.PAUSED}'
    or st == '${DeploymentStatus.WAITING_APPROVAL}' then return 0 end
end
redis.call('LPOP', KEYS[2])
if redis.call('HGET', KEYS[3], 'status') ~= '${DeploymentStatus.QUEUED}' then return 1 end
if redis.call('HGET', KEYS[5], 'buildStatus') == '${BuildStatus.EXPIRED}' then   -- retention let it go meanwhile
  redis.call('HSET', KEYS[3], 'status', '${DeploymentStatus.ABORTED}', 'updatedAt', ARGV[3],
             'reason', 'its build expired while it waited; build the commit again')
  emit('deployment', ARGV[1], redis.call('HGET', KEYS[3], 'projectName'), '${DeploymentStatus.ABORTED}',
       '${DeploymentStatus.QUEUED}')
  return 1
end
redis.call('HSET', KEYS[3], 'status', '${DeploymentStatus.IN_PROGRESS}', 'updatedAt', ARGV[3], 'startedAt', ARGV[3],
           'previousBuildID', ARGV[5], 'reason', '')
local project = redis.call('HGET', KEYS[3], 'projectName')
redis.call('HINCRBY', KEYS[1], 'version', 1)
redis.call('HSET', KEYS[1], 'buildID', redis.call('HGET', KEYS[3], 'buildID'), 'deploymentID', ARGV[1])
redis.call('PUBLISH', ARGV[4], project)
emit('deployment', ARGV[1], project, '${DeploymentStatus.IN_PROGRESS}', '${DeploymentStatus.QUEUED}')
return 2
