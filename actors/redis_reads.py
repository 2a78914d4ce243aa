"""Reads of many Redis hashes in one round trip (a non-transactional pipeline)."""
from __future__ import annotations

import redis


def read_hashes(r: redis.Redis, keys: list[str]) -> list[dict]:
    """HGETALL of each key, in order; a missing hash comes back as {}."""
    with r.pipeline(transaction=False) as p:
        for key in keys:
            p.hgetall(key)
        return p.execute()


def read_fields(r: redis.Redis, keys: list[str], fields: tuple[str, ...]) -> list[list]:
    """HMGET of the same fields from each key, in order (None where missing)."""
    with r.pipeline(transaction=False) as p:
        for key in keys:
            p.hmget(key, *fields)
        return p.execute()
