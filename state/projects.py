"""Projects: a name, its repository and its options."""
from __future__ import annotations

import json
from typing import Callable

import redis

from gantry.state import keys
from gantry.state.connection import read_fields
from gantry.state.audit import AuditLog


class Projects:
    def __init__(self, r: redis.Redis, clock: Callable[[], int], audit_log: AuditLog):
        self.r, self.clock, self.audit_log = r, clock, audit_log

    def put(self, name: str, repo_url: str, options: dict | None = None, audit: str = "") -> bool:
        """Register or update a project; True if it is new. `options` holds the optional
        fields (webhookSecret, defaultBranch, coalesce, ratePerS, rateBurst, prestage) to set."""
        key = keys.project(name)
        with self.r.pipeline() as p:
            p.hsetnx(key, "createdAt", self.clock())
            p.hset(key, mapping={"name": name, "repoURL": repo_url,
                                 **{k: str(v) for k, v in (options or {}).items()}})
            p.sadd(keys.projects(), name)
            if "prestage" in (options or {}):
                (p.sadd if options["prestage"] == "1" else p.srem)(keys.prestaged(), name)
            if audit:
                self.audit_log.record(audit, client=p)
            created = p.execute()[0]
        return bool(created)

    def stack_freeze(self) -> list[dict]:
        """The stack-wide freeze windows (`gantry.rollout.freeze.FreezeIn`, as JSON)."""
        return json.loads(self.r.get(keys.freeze()) or "[]")

    def set_stack_freeze(self, windows: list[dict], audit: str) -> None:
        with self.r.pipeline() as p:
            p.set(keys.freeze(), json.dumps(windows))
            self.audit_log.record(audit, client=p)
            p.execute()

    def prestaged(self) -> list[str]:
        """Projects whose builds are staged on their hosts as soon as they succeed."""
        return sorted(self.r.smembers(keys.prestaged()))

    def names(self) -> list[str]:
        return sorted(self.r.smembers(keys.projects()))

    def repo_urls(self) -> set[str]:
        """Every project's repository URL."""
        names = self.names()
        return {row[0] for row in read_fields(self.r, [keys.project(n) for n in names], ("repoURL",)) if row[0]}

    def get(self, name: str) -> dict | None:
        return self.r.hgetall(keys.project(name)) or None
