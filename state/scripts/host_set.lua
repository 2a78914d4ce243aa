-- One field of a host's records. KEYS: the hash, hostprojects:{dc}:{id}, hostseq:{dc},
-- hostchanged:{dc}. ARGV: hostID, field, value, project (the hash is the host's record for it:
-- it joins the host's projects) or ''.
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
if ARGV[4] ~= '' then redis.call('SADD', KEYS[2], ARGV[4]) end
touch(3, ARGV[1])
