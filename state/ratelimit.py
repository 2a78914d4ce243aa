"""Token buckets in Redis: one per user and one per project, shared by every API replica.

A bucket holds up to `burst` tokens and refills at `rate` tokens a second; a request takes one.
The refill is computed from Redis's own clock inside one script, so replicas never disagree.
"""
from __future__ import annotations

import math

import redis

from gantry.state import keys, scripts


class RateLimited(Exception):
    def __init__(self, scope: str, retry_after_s: int):
        self.scope, self.retry_after_s = scope, retry_after_s
        super().__init__(f"rate limit for {scope} exceeded; retry after {retry_after_s} s")


class RateLimiter:
    def __init__(self, r: redis.Redis):
        self._take = scripts.register(r, "take_token")

    def take(self, scope: str, rate_per_s: float, burst: float, read: str | None = None) -> dict | None:
        """Take a token from `scope`'s bucket or raise RateLimited. A rate of 0 means no limit.
        With `read`, a hash's key: its fields are read in the same round trip and returned
        (None if it does not exist)."""
        if rate_per_s <= 0 and not read:
            return None
        ok, wait_ms, flat = self._take(keys=[keys.rate(scope), *([read] if read else [])],
                                       args=[max(rate_per_s, 0), max(burst, 1)])
        if not ok:
            raise RateLimited(scope, max(1, math.ceil(int(wait_ms) / 1000)))
        return (dict(zip(flat[0::2], flat[1::2])) or None) if read else None
