-- A host's heartbeat. KEYS: host, hosts:{dc}. ARGV: fields json, hostID
-- Notes the target the reply carries as sentTargetBuildID; returns the host's record.
for k, v in pairs(cjson.decode(ARGV[1])) do redis.call('HSET', KEYS[1], k, v) end
redis.call('HSET', KEYS[1], 'sentTargetBuildID', redis.call('HGET', KEYS[1], 'targetBuildID') or '')
redis.call('SADD', KEYS[2], ARGV[2])
return redis.call('HGETALL', KEYS[1])
