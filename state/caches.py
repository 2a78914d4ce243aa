"""Build caches: which manifests hold a project's cache, per branch (see actors/build/cache.py),
when each was last used and how big it is (retention lets the idle and the oversize go)."""
from __future__ import annotations

import json

import redis

from gantry.state import keys


class Caches:
    def __init__(self, r: redis.Redis, clock):
        self.r, self.clock = r, clock

    def get(self, project: str, branch: str) -> dict | None:
        raw = self.r.hget(keys.build_cache(project), branch)
        return json.loads(raw) if raw else None

    def put(self, project: str, branch: str, paths: dict[str, str], build_id: str, size: int = 0) -> None:
        now = self.clock()
        self.r.hset(keys.build_cache(project), branch, json.dumps(
            {"paths": paths, "buildID": build_id, "savedAt": now, "usedAt": now, "bytes": size}))

    def touch(self, project: str, branch: str, entry: dict) -> None:
        """A build restored it: it was used now (unless it was replaced or dropped meanwhile)."""
        raw = json.dumps({**entry, "usedAt": self.clock()})
        with self.r.pipeline() as p:
            try:
                p.watch(keys.build_cache(project))
                current = p.hget(keys.build_cache(project), branch)
                if not current or json.loads(current).get("savedAt") != entry.get("savedAt"):
                    return
                p.multi()
                p.hset(keys.build_cache(project), branch, raw)
                p.execute()
            except redis.WatchError:
                pass   # saved again meanwhile: newer than this use anyway

    def all(self, project: str) -> dict[str, dict]:
        return {b: json.loads(v) for b, v in self.r.hgetall(keys.build_cache(project)).items()}

    def drop(self, project: str, branch: str, saved_at: int) -> bool:
        """Forget a branch's cache, unless it was saved again since `saved_at`."""
        with self.r.pipeline() as p:
            try:
                p.watch(keys.build_cache(project))
                current = p.hget(keys.build_cache(project), branch)
                if not current or json.loads(current).get("savedAt") != saved_at:
                    return False
                p.multi()
                p.hdel(keys.build_cache(project), branch)
                p.execute()
                return True
            except redis.WatchError:
                return False
