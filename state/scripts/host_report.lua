-- A host's heartbeat. KEYS: host:{dc}:{id}, hosts:{dc}, hostprojects:{dc}:{id}, hostseq:{dc},
-- hostchanged:{dc}, then hostp:{dc}:{id}:{p} for each
-- project in ARGV[3]'s order. ARGV: host fields json, hostID, projects json, project fields json
-- (project -> fields it reported). Notes, for each project, the target the reply carries as
-- sentTargetBuildID; returns, in the projects' order, each one's target and build to stage
-- ('' for none), flat: t1, s1, t2, s2, ...
-- A host's state is its own word, so a report is never refused; a move that
-- gantry.statuses.HOST_FROM does not allow is noted on the record (stateJump: "from>to").
local was_lost = redis.call('HEXISTS', KEYS[1], 'lostAt') == 1
for k, v in pairs(cjson.decode(ARGV[1])) do redis.call('HSET', KEYS[1], k, v) end
redis.call('HDEL', KEYS[1], 'lostAt')
redis.call('SADD', KEYS[2], ARGV[2])
local reported = cjson.decode(ARGV[4])
local targets = {}
for i, p in ipairs(cjson.decode(ARGV[3])) do
  local key = KEYS[5 + i]
  local fields = reported[p]
  if fields then
    local cur = was_lost and '${HostState.LOST}' or redis.call('HGET', key, 'state')
    if fields['state'] and cur and fields['state'] ~= cur and not may(${FROM.HostState}, cur, fields['state']) then
      redis.call('HSET', key, 'stateJump', cur .. '>' .. fields['state'])
    end
    for k, v in pairs(fields) do redis.call('HSET', key, k, v) end
    redis.call('SADD', KEYS[3], p)
  end
  local t = redis.call('HGET', key, 'targetBuildID') or ''
  if redis.call('EXISTS', key) == 1 then redis.call('HSET', key, 'sentTargetBuildID', t) end
  table.insert(targets, t)
  table.insert(targets, redis.call('HGET', key, 'stageBuildID') or '')
end
touch(4, ARGV[2])
return targets
