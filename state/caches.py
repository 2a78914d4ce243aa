"""Build caches: which manifests hold a project's cache, per branch (see actors/build/cache.py)."""
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

    def put(self, project: str, branch: str, paths: dict[str, str], build_id: str) -> None:
        self.r.hset(keys.build_cache(project), branch,
                    json.dumps({"paths": paths, "buildID": build_id, "savedAt": self.clock()}))
