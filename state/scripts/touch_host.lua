-- Included by scripts that write a host's records: touch(i, host) bumps the datacenter's change
-- sequence (KEYS[i]) and scores the host with it in the changed set (KEYS[i + 1]), in the same
-- step as the write, so a reader that saw sequence n and reads the hosts scored above n misses
-- no write (state/host_cache.py).
local function touch(i, host)
  redis.call('ZADD', KEYS[i + 1], redis.call('INCR', KEYS[i]), host)
end
