-- The sweeper renews (ARGV[2] > 0) or releases (ARGV[2] = 0) its lease, if it still holds it.
-- KEYS: gc sweep lease. ARGV: token, ttl ms. Returns 1 if it held it.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if tonumber(ARGV[2]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) else redis.call('DEL', KEYS[1]) end
return 1
