"""Projects: a name, its repository and its options."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Callable

import redis
from pydantic import TypeAdapter

from gantry.rollout.freeze import FreezeIn, frozen
from gantry.state import keys
from gantry.state.connection import read_fields
from gantry.state.audit import AuditLog


WINDOWS = TypeAdapter(list[FreezeIn])


def describe(frozen_now: tuple[str, FreezeIn, datetime]) -> str:
    scope, window, until = frozen_now
    return f"{scope} freeze window '{window.reason}' ({window.describe()}) until {until.isoformat()}"


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

    def frozen(self, name: str, now: datetime | None = None) -> tuple[str, FreezeIn, datetime] | None:
        """The freeze window open now for the project (the stack's or its own), as
        `rollout.freeze.frozen` gives it: (scope, window, when it closes); None when none is."""
        windows = {"stack": WINDOWS.validate_python(self.stack_freeze()),
                   "project": WINDOWS.validate_python(json.loads(self.r.hget(keys.project(name), "freeze") or "[]"))}
        return frozen(windows, now or datetime.now(timezone.utc))

    def freeze_reason(self, name: str) -> str | None:
        """Why nothing of the project may start now ("the stack freeze window ... until ..."), if so."""
        now = self.frozen(name)
        return describe(now) if now else None

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
