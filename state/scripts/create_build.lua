-- Queue a new build. KEYS: build, project's index, queue, seq, statuscount, audit keys (4), events
-- ARGV: fields json, index member, audit entry. Returns 0 if the build ID exists.
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local fields = cjson.decode(ARGV[1])
for k, v in pairs(fields) do redis.call('HSET', KEYS[1], k, v) end
redis.call('ZADD', KEYS[2], 0, ARGV[2])
local seq = redis.call('INCR', KEYS[4])
redis.call('ZADD', KEYS[3], tonumber(fields['queueBase']) + seq, fields['buildID'])
redis.call('HINCRBY', KEYS[5], '${BuildStatus.QUEUED}', 1)
audit(ARGV[3], 6)
emit('build', fields['buildID'], fields['projectName'], '${BuildStatus.QUEUED}', '')
return 1
