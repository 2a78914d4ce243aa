-- A new deployment of a project: supersede the one in flight, bump the desired version, record.
-- KEYS: deploy, project's deployments, desired, deployed set, the deployment in flight as the
-- caller read it (or the new one's key if none), audit keys (4), the build
-- ARGV: fields json, now, audit entry, the in-flight deploymentID the caller read ('' if none), channel
-- Returns the new desired version, -1 if the desired deployment changed since it was read, or -2
-- if retention expired the build (expire_build.lua checks the desired build likewise).
local f = cjson.decode(ARGV[1])
if redis.call('HGET', KEYS[10], 'buildStatus') == '${BuildStatus.EXPIRED}' then return -2 end
local prev = redis.call('HGET', KEYS[3], 'deploymentID') or ''
if prev ~= ARGV[4] then return -1 end
if prev ~= '' then
  local st = redis.call('HGET', KEYS[5], 'status')
  if may(${FROM.DeploymentStatus}, st, '${DeploymentStatus.SUPERSEDED}') then
    redis.call('HSET', KEYS[5], 'status', '${DeploymentStatus.SUPERSEDED}',
               'reason', 'superseded by ' .. f['deploymentID'], 'updatedAt', ARGV[2])
  end
end
for k, v in pairs(f) do redis.call('HSET', KEYS[1], k, v) end
redis.call('ZADD', KEYS[2], ARGV[2], f['deploymentID'])
redis.call('SADD', KEYS[4], f['projectName'])
local version = redis.call('HINCRBY', KEYS[3], 'version', 1)
redis.call('HSET', KEYS[3], 'buildID', f['buildID'], 'deploymentID', f['deploymentID'])
redis.call('PUBLISH', ARGV[5], f['projectName'])
audit(ARGV[3], 6)
return version
