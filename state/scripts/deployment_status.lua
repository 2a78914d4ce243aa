-- A status change, if gantry.statuses.DEPLOYMENT_FROM allows it (and the caller's own
-- from-list, if any, names the current status too). KEYS: deploy, audit keys (4), events
-- ARGV: to, from csv ('' = the table's), reason, now, audit entry, fields json ('' = none) to set with it.
-- Returns {1, from} or {0, current}.
local cur = redis.call('HGET', KEYS[1], 'status')
if not cur then return {0, ''} end
if not may(${FROM.DeploymentStatus}, cur, ARGV[1]) then return {0, cur} end
if ARGV[2] ~= '' then
  local named = false
  for s in string.gmatch(ARGV[2], '[^,]+') do if s == cur then named = true end end
  if not named then return {0, cur} end
end
redis.call('HSET', KEYS[1], 'status', ARGV[1], 'updatedAt', ARGV[4])
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'reason', ARGV[3]) end
if ARGV[6] ~= '' then for k, v in pairs(cjson.decode(ARGV[6])) do redis.call('HSET', KEYS[1], k, v) end end
audit(ARGV[5], 2)
emit('deployment', redis.call('HGET', KEYS[1], 'deploymentID'), redis.call('HGET', KEYS[1], 'projectName'),
     ARGV[1], cur)
return {1, cur}
