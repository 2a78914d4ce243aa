"""Connections to Redis, and reads of many hashes in one round trip.

A client retries a failed connection or timeout itself, with capped exponential backoff
(redis-py's `Retry`), for `ride_out_s`: a Redis restart costs callers time, not an error. A
longer outage surfaces as redis.ConnectionError, which each caller handles (the API answers 503;
a build attempt rides out its lease's lifetime, past which the build is another attempt's).
"""
from __future__ import annotations

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

def retry(ride_out_s: float, base_s: float = 0.1, cap_s: float = 5.0) -> Retry:
    """A Retry whose backoffs add up to at least `ride_out_s`."""
    backoff = ExponentialBackoff(cap=cap_s, base=base_s)
    retries, waited = 0, 0.0
    while waited < ride_out_s:
        retries += 1
        waited += backoff.compute(retries)
    return Retry(backoff, retries)


def connect(url: str, decode: bool = True, ride_out_s: float = 3.0) -> redis.Redis:
    return redis.Redis.from_url(
        url, decode_responses=decode, socket_timeout=10, socket_connect_timeout=5, health_check_interval=15,
        retry=retry(ride_out_s), retry_on_error=[redis.ConnectionError, redis.TimeoutError])


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
