-- A new deployment of a project, by the project's concurrency (gantry.statuses.Concurrency):
-- preempt: it supersedes the one in flight and is desired at once; queue: while one is in flight
-- (or others wait), it waits at the end of the project's queue; supersede: so does it, and the
-- queued ones not yet started are superseded by it; reject: while one is in flight or waits, -3.
-- One held by a freeze window (fields holdFreeze) waits in the queue whatever runs (reject: queue);
-- one that overrides a freeze (fields freezeOverride) waits at the front, ahead of those it holds.
-- KEYS: deploy, project's deployments, desired, deployed set, the deployment in flight as the
-- caller read it (or the new one's key if none), audit keys (4), the build, the project's queue,
-- then the queued deployments' keys as the caller read the queue, then the events stream
-- ARGV: fields json, now, audit entry, the in-flight deploymentID the caller read ('' if none),
-- channel, concurrency, the queue as the caller read it (IDs, comma-separated)
-- Returns {the new desired version (0 when it waits), its place in the queue (0: none)}; {-1, 0} if
-- the desired deployment or the queue changed since they were read, {-2, 0} if retention expired
-- the build (expire_build.lua checks the desired build likewise), {-3, 0} when rejected.
local f = cjson.decode(ARGV[1])
if redis.call('HGET', KEYS[10], 'buildStatus') == '${BuildStatus.EXPIRED}' then return {-2, 0} end
local prev = redis.call('HGET', KEYS[3], 'deploymentID') or ''
if prev ~= ARGV[4] then return {-1, 0} end
local queued = redis.call('LRANGE', KEYS[11], 0, -1)
if table.concat(queued, ',') ~= ARGV[7] then return {-1, 0} end
local mode = ARGV[6]
local busy = #queued > 0 or f['holdFreeze'] == '1'
if f['holdFreeze'] == '1' and mode ~= 'supersede' then mode = 'queue' end
if prev ~= '' then
  local st = redis.call('HGET', KEYS[5], 'status')
  busy = busy or st == '${DeploymentStatus.IN_PROGRESS}' or st == '${DeploymentStatus.PAUSED}'
    or st == '${DeploymentStatus.WAITING_APPROVAL}'
end
local function record()
  for k, v in pairs(f) do redis.call('HSET', KEYS[1], k, v) end
  redis.call('ZADD', KEYS[2], ARGV[2], f['deploymentID'])
  redis.call('SADD', KEYS[4], f['projectName'])
  audit(ARGV[3], 6)
  emit('deployment', f['deploymentID'], f['projectName'], f['status'], '')
end
if busy and mode == 'reject' then return {-3, 0} end
if busy and mode ~= 'preempt' then
  if mode == 'supersede' then
    for i = 1, #queued do
      local key = KEYS[11 + i]
      if may(${FROM.DeploymentStatus}, redis.call('HGET', key, 'status'), '${DeploymentStatus.SUPERSEDED}') then
        redis.call('HSET', key, 'status', '${DeploymentStatus.SUPERSEDED}', 'reason', 'superseded by ' .. f['deploymentID'],
                   'updatedAt', ARGV[2])
        emit('deployment', queued[i], f['projectName'], '${DeploymentStatus.SUPERSEDED}', '${DeploymentStatus.QUEUED}')
      end
    end
    redis.call('DEL', KEYS[11])
  end
  f['status'] = '${DeploymentStatus.QUEUED}'
  record()
  local place = 1
  if f['freezeOverride'] then redis.call('LPUSH', KEYS[11], f['deploymentID'])
  else place = redis.call('RPUSH', KEYS[11], f['deploymentID']) end
  redis.call('PUBLISH', ARGV[5], f['projectName'])
  return {0, place}
end
if prev ~= '' then
  local st = redis.call('HGET', KEYS[5], 'status')
  if may(${FROM.DeploymentStatus}, st, '${DeploymentStatus.SUPERSEDED}') then
    redis.call('HSET', KEYS[5], 'status', '${DeploymentStatus.SUPERSEDED}',
               'reason', 'superseded by ' .. f['deploymentID'], 'updatedAt', ARGV[2])
    emit('deployment', prev, f['projectName'], '${DeploymentStatus.SUPERSEDED}', st)
  end
end
record()
local version = redis.call('HINCRBY', KEYS[3], 'version', 1)
redis.call('HSET', KEYS[3], 'buildID', f['buildID'], 'deploymentID', f['deploymentID'])
redis.call('PUBLISH', ARGV[5], f['projectName'])
return {version, 0}
