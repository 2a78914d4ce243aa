-- Conditional status change. KEYS: deploy, audit keys (4)
-- ARGV: to, allowed-from csv, reason, now, audit entry. Returns {1, from} or {0, current}.
local cur = redis.call('HGET', KEYS[1], 'status')
if not cur then return {0, ''} end
for s in string.gmatch(ARGV[2], '[^,]+') do
  if s == cur then
    redis.call('HSET', KEYS[1], 'status', ARGV[1], 'updatedAt', ARGV[4])
    if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'reason', ARGV[3]) end
    audit(ARGV[5], 2)
    return {1, cur}
  end
end
return {0, cur}
