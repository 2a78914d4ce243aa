-- Pin a build (retention keeps it) or unpin it; an EXPIRED build cannot be pinned again.
-- KEYS: build, audit keys (4)
-- ARGV: '1' to pin, '' to unpin, audit entry
-- Returns {1, status} or {0, status ('' if no such build)}.
local cur = redis.call('HGET', KEYS[1], 'buildStatus')
if not cur then return {0, ''} end
if ARGV[1] == '1' then
  if cur == '${BuildStatus.EXPIRED}' then return {0, cur} end
  redis.call('HSET', KEYS[1], 'pinned', '1')
else
  redis.call('HDEL', KEYS[1], 'pinned')
end
audit(ARGV[2], 2)
return {1, cur}
