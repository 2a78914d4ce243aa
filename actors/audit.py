"""The audit log: who did what, when, to which project. Append-only, newest first, paged with
the same cursor scheme as builds ("<ms>:<id>").

Keys: audit (zset, all entries), audit:{project} (zset), audit:entry:{id} (hash).
"""
from __future__ import annotations

import json
import time
import uuid

import redis

from gantry import builds as B

P = "gantry:"
ACTIONS = ("project.register", "build.create", "build.cancel", "build.supersede", "deployment.create",
           "deployment.pause", "deployment.resume", "deployment.abort", "rollback", "archive")


class AuditLog:
    def __init__(self, r: redis.Redis):
        self.r = r

    def record(self, user: str, action: str, project: str | None, target: str | None = None,
               detail: dict | None = None) -> str:
        assert action in ACTIONS, action
        # IDs start with a counter, so entries made in the same millisecond keep their order
        entry_id = f"{self.r.incr(f'{P}audit:seq'):016x}{uuid.uuid4().hex[:16]}"
        now = int(time.time() * 1000)
        member = B.index_member(now, entry_id)
        with self.r.pipeline() as p:
            p.hset(f"{P}audit:entry:{entry_id}", mapping={
                "auditID": entry_id, "at": now, "user": user, "action": action, "project": project or "",
                "target": target or "", "detail": json.dumps(detail or {})})
            p.zadd(f"{P}audit", {member: 0})
            if project:
                p.zadd(f"{P}audit:{project}", {member: 0})
            p.execute()
        return entry_id

    def page(self, project: str | None, limit: int, cursor: str | None) -> tuple[list[dict], str | None]:
        start = f"({B.parse_cursor(cursor)}" if cursor else "+"
        key = f"{P}audit:{project}" if project else f"{P}audit"
        members = self.r.zrange(key, start, "-", desc=True, bylex=True, offset=0, num=limit + 1)
        items, next_cursor = B.page(members, limit)
        with self.r.pipeline(transaction=False) as p:
            for m in items:
                p.hgetall(f"{P}audit:entry:{B.split_member(m)[1]}")
            rows = p.execute()
        return [{"auditID": h["auditID"], "at": B.iso_ms(int(h["at"])), "user": h["user"], "action": h["action"],
                 "project": h["project"] or None, "target": h["target"] or None, "detail": json.loads(h["detail"])}
                for h in rows if h], next_cursor
