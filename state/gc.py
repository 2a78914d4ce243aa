"""Retention's state: builds pinned and expired, and the fence between the writers that may reuse
stored chunks and the sweep that deletes unreferenced ones.

Why a fence: a publish (or a cache save) skips a chunk the store already holds. If that chunk
belongs only to an expired build, a sweep that marked before the publish's manifest was recorded
would delete it under the publish. So such writers hold a lease in `gc:writers` from their first
upload until their manifest is recorded, and a sweep first takes `gc:sweep` (no new writer enters),
waits for the writers in flight to finish, marks again, and only then deletes. Writers wait while
a sweep deletes; a crashed writer's lease, or a crashed sweeper's, runs out by itself.
"""
from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from typing import Callable, Iterator

import redis

from gantry.state import audit as audit_entries
from gantry.state import keys, scripts


class FenceLost(Exception):
    """A writer's lease ran out while it wrote (it could not renew it): what it wrote may have been swept."""


class Retention:
    def __init__(self, r: redis.Redis, clock: Callable[[], int]):
        self.r, self.clock = r, clock
        self._expire = scripts.register(r, "expire_build")
        self._pin = scripts.register(r, "pin_build")
        self._enter = scripts.register(r, "gc_enter")
        self._writers = scripts.register(r, "gc_writers")
        self._lease = scripts.register(r, "gc_lease")

    # --- builds ---------------------------------------------------------------------------------

    def pin(self, build_id: str, pinned: bool, audit: str = "") -> tuple[bool, str]:
        """(done, the build's status; '' if there is no such build)."""
        ok, status = self._pin(keys=[keys.build(build_id), *audit_entries.keys_for(audit)],
                               args=["1" if pinned else "", audit])
        return bool(ok), status

    def expire(self, project: str, build_id: str, reason: str, audit: str = "") -> tuple[bool, str]:
        """SUCCEEDED -> EXPIRED unless it is pinned or desired now: (done, why not)."""
        ok, why = self._expire(keys=[keys.build(build_id), keys.desired(project), keys.statuscount(),
                                     *audit_entries.keys_for(audit)], args=[self.clock(), reason, audit])
        return bool(ok), why

    # --- the fence ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def writing(self, what: str, lease_s: float = 60.0, poll_s: float = 0.25,
                waiting: Callable[[], None] = lambda: None) -> Iterator[Callable[[], None]]:
        """Hold a writer's lease around uploads whose manifest is recorded before the block ends.
        Waits while a sweep deletes (calling `waiting` once). Yields `check`, which raises FenceLost
        if the lease could not be kept: call it just before recording the manifest."""
        writer = f"{what}:{uuid.uuid4().hex[:8]}"
        lease_ms = int(lease_s * 1000)
        told = False
        while not self._enter(keys=[keys.gc_writers(), keys.gc_sweep()], args=[writer, lease_ms, ""]):
            if not told:
                waiting()
                told = True
            time.sleep(poll_s)
        stop, lost = threading.Event(), threading.Event()

        def renew():
            while not stop.wait(lease_s / 3):
                try:
                    if not self._enter(keys=[keys.gc_writers(), keys.gc_sweep()], args=[writer, lease_ms, "1"]):
                        lost.set()
                except redis.RedisError:
                    pass   # the next renewal tries again; the lease outlives two misses

        def check():
            if lost.is_set():
                raise FenceLost(f"{what}: its garbage-collection lease ran out while it wrote")
        t = threading.Thread(target=renew, daemon=True, name="gc-fence")
        t.start()
        try:
            yield check
        finally:
            stop.set()
            t.join()
            self.r.zrem(keys.gc_writers(), writer)

    def writers_in_flight(self) -> int:
        return int(self._writers(keys=[keys.gc_writers()]))

    def begin_sweep(self, ttl_s: float) -> str | None:
        """Take the sweep lease (no writer enters while it is held); a token, or None if another holds it."""
        token = uuid.uuid4().hex
        return token if self.r.set(keys.gc_sweep(), token, nx=True, px=int(ttl_s * 1000)) else None

    def renew_sweep(self, token: str, ttl_s: float) -> bool:
        return bool(self._lease(keys=[keys.gc_sweep()], args=[token, int(ttl_s * 1000)]))

    def end_sweep(self, token: str) -> None:
        self._lease(keys=[keys.gc_sweep()], args=[token, 0])

    def sweeping(self) -> bool:
        return bool(self.r.exists(keys.gc_sweep()))

    def save_report(self, report: dict) -> None:
        self.r.set(keys.gc_last(), json.dumps(report))

    def last_report(self) -> dict | None:
        raw = self.r.get(keys.gc_last())
        return json.loads(raw) if raw else None
