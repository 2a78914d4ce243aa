"""The audit log: who did what, when, to which project. Append-only, newest first, paged with
the same cursor scheme as builds ("<ms>:<id>").

An entry is written by the same Redis script as the change it records (`AUDIT_LUA` is part of
the build and deployment scripts), so there is an entry exactly when the change happened, even if
the API process dies between the two. Entry IDs start with a counter, so entries made in the same
millisecond keep their order.

Keys: audit (zset, all entries), audit:{project} (zset), audit:entry:{id} (hash), audit:seq.
"""
from __future__ import annotations

import json
import time
import uuid

import redis

from gantry import builds as B
from gantry.actors.redis_reads import read_hashes

P = "gantry:"
ACTIONS = ("project.register", "build.create", "build.cancel", "build.supersede", "deployment.create",
           "deployment.pause", "deployment.resume", "deployment.abort", "rollback", "archive",
           "replication.retry")

# A Lua function for scripts that record what they did: audit(ARGV[i]) with an entry from
# `prepare` ('' records nothing).
AUDIT_LUA = """
local function audit(raw)
  if raw == nil or raw == '' then return end
  local e = cjson.decode(raw)
  local id = string.format('%016d', redis.call('INCR', 'gantry:audit:seq')) .. e['nonce']
  local member = e['at'] .. ':' .. id
  redis.call('HSET', 'gantry:audit:entry:' .. id, 'auditID', id, 'at', e['at'], 'user', e['user'],
             'action', e['action'], 'project', e['project'], 'target', e['target'], 'detail', e['detail'])
  redis.call('ZADD', 'gantry:audit', 0, member)
  if e['project'] ~= '' then redis.call('ZADD', 'gantry:audit:' .. e['project'], 0, member) end
end
"""
_RECORD = AUDIT_LUA + "audit(ARGV[1])\nreturn 1\n"


def prepare(user: str, action: str, project: str | None, target: str | None = None,
            detail: dict | None = None) -> str:
    """An entry to hand to a store method that records it with its change."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action}")
    return json.dumps({"at": f"{int(time.time() * 1000):013d}", "nonce": uuid.uuid4().hex[:16], "user": user,
                       "action": action, "project": project or "", "target": target or "",
                       "detail": json.dumps(detail or {})})


class AuditLog:
    def __init__(self, r: redis.Redis):
        self.r = r
        self._record = r.register_script(_RECORD)

    def record(self, entry: str, client=None) -> None:
        """Write a prepared entry on its own (or inside the caller's MULTI pipeline)."""
        self._record(keys=[], args=[entry], client=client)

    def page(self, project: str | None, limit: int, cursor: str | None) -> tuple[list[dict], str | None]:
        start = f"({B.parse_cursor(cursor)}" if cursor else "+"
        key = f"{P}audit:{project}" if project else f"{P}audit"
        members = self.r.zrange(key, start, "-", desc=True, bylex=True, offset=0, num=limit + 1)
        items, next_cursor = B.page(members, limit)
        rows = read_hashes(self.r, [f"{P}audit:entry:{B.split_member(m)[1]}" for m in items])
        return [{"auditID": h["auditID"], "at": B.iso_ms(int(h["at"])), "user": h["user"], "action": h["action"],
                 "project": h["project"] or None, "target": h["target"] or None, "detail": json.loads(h["detail"])}
                for h in rows if h], next_cursor
