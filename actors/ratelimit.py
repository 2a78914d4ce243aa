"""Token buckets in Redis: one per user and one per project, shared by every API replica.

A bucket holds up to `burst` tokens and refills at `rate` tokens a second; a request takes one.
The refill is computed from Redis's own clock inside one script, so replicas never disagree.
"""
from __future__ import annotations

import math

import redis

# KEYS: bucket. ARGV: rate per s, burst. Returns {allowed 0/1, ms until a token is back}
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local b = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(b[1]), tonumber(b[2])
if not tokens then tokens, at = burst, now end
tokens = math.min(burst, tokens + (now - at) * rate / 1000)
local ok, wait = 0, 0
if tokens >= 1 then
  tokens, ok = tokens - 1, 1
else
  wait = math.ceil((1 - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return {ok, wait}
"""


class RateLimited(Exception):
    def __init__(self, scope: str, retry_after_s: int):
        self.scope, self.retry_after_s = scope, retry_after_s
        super().__init__(f"rate limit for {scope} exceeded; retry after {retry_after_s} s")


class RateLimiter:
    def __init__(self, r: redis.Redis):
        self._take = r.register_script(_TAKE)

    def take(self, scope: str, rate_per_s: float, burst: float) -> None:
        """Take a token from `scope`'s bucket or raise RateLimited. A rate of 0 means no limit."""
        if rate_per_s <= 0:
            return
        ok, wait_ms = self._take(keys=[f"gantry:rate:{scope}"], args=[rate_per_s, max(burst, 1)])
        if not ok:
            raise RateLimited(scope, max(1, math.ceil(int(wait_ms) / 1000)))
