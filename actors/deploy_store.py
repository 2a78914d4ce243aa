"""Durable deploy state in Redis: deployments, each project's desired build (the design's
ZooKeeper role), the host registry and each datacenter's persisted rollout.

Keys (prefix `gantry:`):
  deploy:{id}               hash  deploymentID, projectName, buildID, previousBuildID, strategy,
                                  status, reason, regions, createdAt, updatedAt, createdBy
  deploys:{project}         zset  deploymentID by createdAt
  desired:{project}         hash  buildID, deploymentID, version (+1 on every change)
  deployed                  set   projects that have a desired state
  dcdone:{id}               hash  dc -> DONE | ROLLED_BACK
  current:{project}         hash  dc -> the buildID the datacenter runs (after a rollout or rollback)
  rollout:{id}:{dc}         str   the datacenter's DcRollout as JSON
  host:{hostID}             hash  hostID, region, dc, address, state, activeBuildID,
                                  targetBuildID, error, updatedAt, ackedTargetBuildID (the
                                  target the host knew when it reported), sentTargetBuildID
                                  (the target the answer to that report gave)
  hosts:{dc}                set   host IDs
Changes to desired state are published on channel `gantry:desired` (the project's name).
"""
from __future__ import annotations

import json
import time
import uuid
from typing import Callable

import redis

from gantry import builds as B
from gantry.actors.audit import AUDIT_LUA
from gantry.actors.redis_reads import read_fields, read_hashes

P = "gantry:"
CHANNEL = "gantry:desired"
ACTIVE = ("PENDING", "IN_PROGRESS", "PAUSED")
TERMINAL = ("COMPLETED", "ROLLED_BACK", "ABORTED", "SUPERSEDED", "FAILED")

# A new deployment of a project: supersede the one in flight, bump the desired version, record.
# KEYS: deploy, deploys index, desired. ARGV: fields json, now, audit entry
_CREATE = AUDIT_LUA + """
local f = cjson.decode(ARGV[1])
local prev = redis.call('HGET', KEYS[3], 'deploymentID')
if prev then
  local pk = 'gantry:deploy:' .. prev
  local st = redis.call('HGET', pk, 'status')
  if st == 'PENDING' or st == 'IN_PROGRESS' or st == 'PAUSED' then
    redis.call('HSET', pk, 'status', 'SUPERSEDED', 'reason', 'superseded by ' .. f['deploymentID'],
               'updatedAt', ARGV[2])
  end
end
for k, v in pairs(f) do redis.call('HSET', KEYS[1], k, v) end
redis.call('ZADD', KEYS[2], ARGV[2], f['deploymentID'])
redis.call('SADD', 'gantry:deployed', f['projectName'])
local version = redis.call('HINCRBY', KEYS[3], 'version', 1)
redis.call('HSET', KEYS[3], 'buildID', f['buildID'], 'deploymentID', f['deploymentID'])
redis.call('PUBLISH', 'gantry:desired', f['projectName'])
audit(ARGV[3])
return version
"""

# Conditional status change. KEYS: deploy. ARGV: to, allowed-from csv, reason, now, audit entry
_STATUS = AUDIT_LUA + """
local cur = redis.call('HGET', KEYS[1], 'status')
if not cur then return {0, ''} end
for s in string.gmatch(ARGV[2], '[^,]+') do
  if s == cur then
    redis.call('HSET', KEYS[1], 'status', ARGV[1], 'updatedAt', ARGV[4])
    if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'reason', ARGV[3]) end
    audit(ARGV[5])
    return {1, cur}
  end
end
return {0, cur}
"""


# A host's heartbeat. KEYS: host, hosts:{dc}. ARGV: fields json, hostID
_REPORT = """
for k, v in pairs(cjson.decode(ARGV[1])) do redis.call('HSET', KEYS[1], k, v) end
redis.call('HSET', KEYS[1], 'sentTargetBuildID', redis.call('HGET', KEYS[1], 'targetBuildID') or '')
redis.call('SADD', KEYS[2], ARGV[2])
return redis.call('HGETALL', KEYS[1])
"""


class DeployStore:
    def __init__(self, url: str, clock: Callable[[], int] = lambda: int(time.time() * 1000)):
        self.r = redis.Redis.from_url(url, decode_responses=True, socket_timeout=10, socket_connect_timeout=5)
        self.clock = clock
        self._create = self.r.register_script(_CREATE)
        self._status = self.r.register_script(_STATUS)
        self._report = self.r.register_script(_REPORT)

    # --- deployments ------------------------------------------------------------------------

    def create(self, project: str, build_id: str, previous_build: str | None, strategy: dict,
               regions: list[str], user: str, audit: Callable[[str], str] | None = None) -> dict:
        """A new deployment; `audit(deploymentID)` gives the audit entry written with it."""
        dep_id = uuid.uuid4().hex
        now = self.clock()
        fields = {"deploymentID": dep_id, "projectName": project, "buildID": build_id,
                  "previousBuildID": previous_build or "", "strategy": json.dumps(strategy),
                  "status": "IN_PROGRESS", "reason": "", "regions": json.dumps(regions),
                  "createdAt": str(now), "updatedAt": str(now), "createdBy": user}
        self._create(keys=[f"{P}deploy:{dep_id}", f"{P}deploys:{project}", f"{P}desired:{project}"],
                     args=[json.dumps(fields), now, audit(dep_id) if audit else ""])
        return fields

    def get(self, dep_id: str) -> dict | None:
        return self.r.hgetall(f"{P}deploy:{dep_id}") or None

    def page(self, project: str, limit: int, cursor: str | None) -> tuple[list[dict], str | None]:
        """A project's deployments, newest first; the cursor is "<createdAt ms>:<deploymentID>"
        of the last one shown (ties on createdAt are ordered by ID, so none repeats or is skipped)."""
        key = f"{P}deploys:{project}"
        if cursor:
            ms, last_id = B.split_member(B.parse_cursor(cursor))
            same = [m for m in self.r.zrevrangebyscore(key, ms, ms) if m < last_id]
            ids = same + self.r.zrevrangebyscore(key, f"({ms}", "-inf", start=0, num=limit + 1)
        else:
            ids = self.r.zrevrange(key, 0, limit)
        deps = [d for d in read_hashes(self.r, [f"{P}deploy:{i}" for i in ids[:limit + 1]]) if d]
        members, next_cursor = B.page([B.index_member(int(d["createdAt"]), d["deploymentID"]) for d in deps], limit)
        return deps[:len(members)], next_cursor

    def desired(self, project: str) -> dict:
        return self.r.hgetall(f"{P}desired:{project}")

    def projects_with_desired_state(self) -> list[str]:
        return sorted(self.r.smembers(f"{P}deployed"))

    def set_status(self, dep_id: str, to: str, allowed_from: tuple[str, ...], reason: str = "",
                   audit: str = "") -> str | None:
        """Returns the previous status if the change was made (and `audit` recorded), else None."""
        ok, cur = self._status(keys=[f"{P}deploy:{dep_id}"],
                               args=[to, ",".join(allowed_from), reason, self.clock(), audit])
        return cur if ok else None

    def completed_builds(self, project: str) -> list[str]:
        """Builds of COMPLETED deployments, newest first, each once (the good builds)."""
        rows = read_fields(self.r, [f"{P}deploy:{i}" for i in self.r.zrevrange(f"{P}deploys:{project}", 0, 500)],
                           ("status", "buildID"))
        out = []
        for status, build_id in rows:
            if status == "COMPLETED" and build_id not in out:
                out.append(build_id)
        return out

    def last_completed_build(self, project: str) -> str | None:
        """The previous good build: the newest COMPLETED deployment's."""
        return next(iter(self.completed_builds(project)), None)

    def mark_dc(self, dep_id: str, dc: str, outcome: str) -> dict[str, str]:
        self.r.hset(f"{P}dcdone:{dep_id}", dc, outcome)
        return self.r.hgetall(f"{P}dcdone:{dep_id}")

    def dc_outcomes(self, dep_id: str) -> dict[str, str]:
        return self.r.hgetall(f"{P}dcdone:{dep_id}")

    def set_dc_current(self, project: str, dc: str, build_id: str) -> None:
        self.r.hset(f"{P}current:{project}", dc, build_id)

    def dc_current(self, project: str) -> dict[str, str]:
        return self.r.hgetall(f"{P}current:{project}")

    def save_rollout(self, dep_id: str, dc: str, rollout: dict) -> None:
        self.r.set(f"{P}rollout:{dep_id}:{dc}", json.dumps(rollout))

    def load_rollout(self, dep_id: str, dc: str) -> dict | None:
        raw = self.r.get(f"{P}rollout:{dep_id}:{dc}")
        return json.loads(raw) if raw else None

    # --- hosts ------------------------------------------------------------------------------

    def record_report(self, host_id: str, region: str, dc: str, fields: dict) -> dict:
        """Store a host's heartbeat and return its record, whose targetBuildID is the reply. The
        same script notes that target as sentTargetBuildID, so a rollout never reads a report
        without knowing what the host was told in answer to it."""
        fields = {"hostID": host_id, "region": region, "dc": dc, "updatedAt": str(self.clock()),
                  **{k: "" if v is None else str(v) for k, v in fields.items()}}
        flat = self._report(keys=[f"{P}host:{host_id}", f"{P}hosts:{dc}"], args=[json.dumps(fields), host_id])
        return dict(zip(flat[::2], flat[1::2]))

    def set_target(self, host_id: str, build_id: str) -> None:
        self.r.hset(f"{P}host:{host_id}", "targetBuildID", build_id)

    def mark_lost(self, host_id: str) -> None:
        self.r.hset(f"{P}host:{host_id}", "state", "lost")

    def hosts(self, dc: str) -> list[dict]:
        return [h for h in read_hashes(self.r, [f"{P}host:{i}" for i in sorted(self.r.smembers(f"{P}hosts:{dc}"))]) if h]
