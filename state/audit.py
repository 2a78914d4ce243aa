"""The audit log: who did what, when, to which project. Append-only, newest first, paged with
the listing cursor (`gantry.cursor`).

An entry is written by the same Redis script as the change it records (scripts call the
`audit.lua` function), so there is an entry exactly when the change happened, even if the API
process dies between the two. Entry IDs start with a counter, so entries made in the same
millisecond keep their order.
"""
from __future__ import annotations

import json
import time
import uuid

import redis

from gantry import cursor
from gantry.clock import iso_ms
from gantry.state import keys, scripts

ACTIONS = ("project.register", "build.create", "build.cancel", "build.supersede", "deployment.create",
           "deployment.pause", "deployment.resume", "deployment.abort", "rollback", "archive",
           "replication.retry", "build.expire", "build.pin", "build.unpin", "gc", "freeze.set",
           "deployment.approve")


def prepare(user: str, action: str, project: str | None, target: str | None = None,
            detail: dict | None = None) -> str:
    """An entry to hand to a state method that records it with its change."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action}")
    return json.dumps({"at": f"{int(time.time() * 1000):013d}", "nonce": uuid.uuid4().hex[:16], "user": user,
                       "action": action, "project": project or "", "target": target or "",
                       "detail": json.dumps(detail or {})})


def keys_for(entry: str | None) -> list[str]:
    """The four keys the `audit` Lua function writes for this entry (or would, for '')."""
    project = json.loads(entry)["project"] if entry else ""
    return [keys.audit_seq(), keys.audit(), keys.audit_project(project) if project else keys.audit(),
            keys.audit_entries()]


class AuditLog:
    def __init__(self, r: redis.Redis):
        self.r = r
        self._record = scripts.register(r, "record_audit")

    def record(self, entry: str, client=None) -> None:
        """Write a prepared entry on its own (or inside the caller's MULTI pipeline)."""
        self._record(keys=keys_for(entry), args=[entry], client=client)

    def page(self, project: str | None, limit: int, after: str | None) -> tuple[list[dict], str | None]:
        start = f"({after}" if after else "+"
        index = keys.audit_project(project) if project else keys.audit()
        members = self.r.zrange(index, start, "-", desc=True, bylex=True, offset=0, num=limit + 1)
        items, next_cursor = cursor.page(members, limit)
        ids = [cursor.split(m)[1] for m in items]
        rows = [json.loads(raw) for raw in (self.r.hmget(keys.audit_entries(), ids) if ids else []) if raw]
        return [{"auditID": e["auditID"], "at": iso_ms(int(e["at"])), "user": e["user"], "action": e["action"],
                 "project": e["project"] or None, "target": e["target"] or None, "detail": json.loads(e["detail"])}
                for e in rows], next_cursor
