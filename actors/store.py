"""Durable build state in Redis: the Builds table, per-project index, queue, leases and logs.

Every state change is one Lua script, so it is atomic and conditional: a transition names the
statuses it may come from (from `gantry.builds.ALLOWED_FROM`) and, for a worker, the lease it
holds. A refused transition changes nothing and raises `TransitionRefused`.

Keys (prefix `gantry:`):
  project:{name}      hash  repoURL, createdAt
  projects            set   project names
  build:{id}          hash  the build record
  builds:{project}    zset  score 0, member "<createdAt ms>:<buildID>" (lexical = time order)
  queue               zset  buildID -> queue score (priority, then arrival)
  delayed             zset  buildID -> ms when a retried build may run again
  building            set   buildIDs in BUILDING
  seq                 int   arrival counter
  log:{id}            str   the build's log
  repl:{id}           set   regions the build replicates to (the primary included)
  repl:{id}:{region}  hash  the Binary replication row: replicationStatus, bytes/chunks moved...
  replq:{region}      zset  buildID -> ms when that region's replication job may run
  statuscount         hash  status -> how many builds are in it (kept by the same scripts)
  archived:{project}  hash  buildID -> the archive file that holds it (actors/archive.py)
  archivedNewest      hash  project -> index member of its newest archived build
  delivery:{p}:{id}   str   the buildID a webhook delivery created (expires after 7 days)
  push:{p}:{sha}:{d}  str   the same, by the pushed commit and the body's digest: a signed body
                            replayed with a new delivery ID builds nothing new
"""
from __future__ import annotations

import json
import time
from typing import Callable

import redis

from gantry import builds as B
from gantry.actors.audit import AUDIT_LUA, AuditLog
from gantry.actors.redis_reads import read_fields, read_hashes
from gantry.builds import BuildStatus

P = "gantry:"


class TransitionRefused(Exception):
    def __init__(self, build_id: str, current: str | None, to: str):
        self.build_id, self.current, self.to = build_id, current, to
        super().__init__(f"build {build_id} is {current or 'unknown'}; cannot become {to}")


class DuplicateBuild(Exception):
    pass


_CREATE = AUDIT_LUA + """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local fields = cjson.decode(ARGV[1])
for k, v in pairs(fields) do redis.call('HSET', KEYS[1], k, v) end
redis.call('ZADD', KEYS[2], 0, ARGV[2])
local seq = redis.call('INCR', KEYS[4])
redis.call('ZADD', KEYS[3], tonumber(fields['queueBase']) + seq, fields['buildID'])
redis.call('HINCRBY', 'gantry:statuscount', 'QUEUED', 1)
audit(ARGV[3])
return 1
"""

# KEYS: build, building, queue, delayed, seq
# ARGV: to, allowed-from (comma list), lease owner ('' = any), fields json, delay-until ms, audit entry
_TRANSITION = AUDIT_LUA + """
local cur = redis.call('HGET', KEYS[1], 'buildStatus')
if not cur then return {0, ''} end
local ok = false
for s in string.gmatch(ARGV[2], '[^,]+') do if s == cur then ok = true end end
if not ok then return {0, cur} end
if ARGV[3] ~= '' and redis.call('HGET', KEYS[1], 'leaseOwner') ~= ARGV[3] then return {0, cur} end
local to = ARGV[1]
redis.call('HSET', KEYS[1], 'buildStatus', to)
redis.call('HINCRBY', 'gantry:statuscount', cur, -1)
redis.call('HINCRBY', 'gantry:statuscount', to, 1)
for k, v in pairs(cjson.decode(ARGV[4])) do redis.call('HSET', KEYS[1], k, v) end
local id = redis.call('HGET', KEYS[1], 'buildID')
if to == 'BUILDING' then redis.call('SADD', KEYS[2], id) else redis.call('SREM', KEYS[2], id) end
redis.call('ZREM', KEYS[3], id)
redis.call('ZREM', KEYS[4], id)
if to == 'QUEUED' then
  local until_ms = tonumber(ARGV[5])
  if until_ms > 0 then
    redis.call('ZADD', KEYS[4], until_ms, id)
  else
    local seq = redis.call('INCR', KEYS[5])
    redis.call('ZADD', KEYS[3], tonumber(redis.call('HGET', KEYS[1], 'queueBase')) + seq, id)
  end
end
audit(ARGV[6])
return {1, cur}
"""

# Take the first QUEUED build off the queue and lease it. KEYS: queue, building
# ARGV: now ms, lease owner
_CLAIM = """
while true do
  local head = redis.call('ZRANGE', KEYS[1], 0, 0)
  if #head == 0 then return false end
  local id = head[1]
  redis.call('ZREM', KEYS[1], id)
  local key = 'gantry:build:' .. id
  if redis.call('HGET', key, 'buildStatus') == 'QUEUED' then
    redis.call('HSET', key, 'buildStatus', 'BUILDING', 'leaseOwner', ARGV[2],
               'startedAt', ARGV[1], 'lastHeartbeat', ARGV[1])
    redis.call('SADD', KEYS[2], id)
    redis.call('HINCRBY', 'gantry:statuscount', 'QUEUED', -1)
    redis.call('HINCRBY', 'gantry:statuscount', 'BUILDING', 1)
    return id
  end
end
"""

# Move retried builds whose backoff has passed back onto the queue. KEYS: delayed, queue, seq
_PROMOTE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 100)
for _, id in ipairs(due) do
  redis.call('ZREM', KEYS[1], id)
  local key = 'gantry:build:' .. id
  if redis.call('HGET', key, 'buildStatus') == 'QUEUED' then
    local seq = redis.call('INCR', KEYS[3])
    redis.call('ZADD', KEYS[2], tonumber(redis.call('HGET', key, 'queueBase')) + seq, id)
  end
end
return #due
"""

# A worker's check-in. Returns the build's status, or LEASE_LOST if another attempt holds it.
# ARGV: now ms (or '' to only check), lease owner
# KEYS: delivery key, push key. ARGV: new buildID, ttl. The build either key already names, or
# the new one claimed under both: {buildID, 1 if new}.
_CLAIM_DELIVERY = """
local v = redis.call('GET', KEYS[1])
if not v then v = redis.call('GET', KEYS[2]) end
if v then
  redis.call('SET', KEYS[1], v, 'EX', ARGV[2], 'NX')
  redis.call('SET', KEYS[2], v, 'EX', ARGV[2], 'NX')
  return {v, 0}
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[2])
return {ARGV[1], 1}
"""

_CHECK_IN = """
local cur = redis.call('HGET', KEYS[1], 'buildStatus')
if cur == 'BUILDING' and redis.call('HGET', KEYS[1], 'leaseOwner') ~= ARGV[2] then return 'LEASE_LOST' end
if cur == 'BUILDING' and ARGV[1] ~= '' then redis.call('HSET', KEYS[1], 'lastHeartbeat', ARGV[1]) end
return cur
"""

# Append to a log up to a cap. KEYS: log. ARGV: text, cap
_APPEND_LOG = """
local len = redis.call('STRLEN', KEYS[1])
local cap = tonumber(ARGV[2])
if len >= cap then return len end
local text = ARGV[1]
if len + #text > cap then text = string.sub(text, 1, cap - len) .. '\\n[log truncated]\\n' end
return redis.call('APPEND', KEYS[1], text)
"""


# The artifact is in the primary store: BUILDING -> DEPLOYING, one replication row per region
# (the primary's already REPLICATED) and a job per other region, in one step.
# KEYS: build, building. ARGV: lease owner, fields json, now, primary, other regions json,
# primary row json
_PUBLISH = """
local cur = redis.call('HGET', KEYS[1], 'buildStatus')
if cur ~= 'BUILDING' or redis.call('HGET', KEYS[1], 'leaseOwner') ~= ARGV[1] then return {0, cur or ''} end
local id = redis.call('HGET', KEYS[1], 'buildID')
for k, v in pairs(cjson.decode(ARGV[2])) do redis.call('HSET', KEYS[1], k, v) end
redis.call('HSET', KEYS[1], 'buildStatus', 'DEPLOYING', 'leaseOwner', '')
redis.call('SREM', KEYS[2], id)
redis.call('HINCRBY', 'gantry:statuscount', 'BUILDING', -1)
local rows = 'gantry:repl:' .. id
local now = ARGV[3]
local primary = cjson.decode(ARGV[6])
redis.call('SADD', rows, ARGV[4])
redis.call('HSET', rows .. ':' .. ARGV[4], 'region', ARGV[4], 'replicationStatus', 'REPLICATED',
           'createdAt', now, 'updatedAt', now, 'retries', 0, 'error', '',
           'bytesTransferred', primary['bytesTransferred'], 'chunksTransferred', primary['chunksTransferred'],
           'bytesSkipped', primary['bytesSkipped'], 'chunksSkipped', primary['chunksSkipped'])
local others = cjson.decode(ARGV[5])
for _, r in ipairs(others) do
  redis.call('SADD', rows, r)
  redis.call('HSET', rows .. ':' .. r, 'region', r, 'replicationStatus', 'PENDING', 'createdAt', now,
             'updatedAt', now, 'retries', 0, 'error', '', 'bytesTransferred', 0, 'chunksTransferred', 0,
             'bytesSkipped', 0, 'chunksSkipped', 0)
  redis.call('ZADD', 'gantry:replq:' .. r, now, id)
end
if #others == 0 then
  redis.call('HSET', KEYS[1], 'buildStatus', 'SUCCEEDED', 'finishedAt', now)
  redis.call('HINCRBY', 'gantry:statuscount', 'SUCCEEDED', 1)
  return {1, 'SUCCEEDED'}
end
redis.call('HINCRBY', 'gantry:statuscount', 'DEPLOYING', 1)
return {1, 'DEPLOYING'}
"""

# Restart the regions whose replication gave up. KEYS: build, its set of regions. ARGV: now, audit
# entry or ''. Returns the regions restarted; the build goes back to DEPLOYING if it had FAILED.
_RESTART_REPLICATION = AUDIT_LUA + """
local id = redis.call('HGET', KEYS[1], 'buildID')
if not id then return {} end
local st = redis.call('HGET', KEYS[1], 'buildStatus')
if st ~= 'DEPLOYING' and not (st == 'FAILED' and redis.call('HGET', KEYS[1], 'replicationFailed') == '1') then
  return {}
end
local restarted = {}
for _, r in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local row = KEYS[2] .. ':' .. r
  if redis.call('HGET', row, 'replicationStatus') == 'FAILED' then
    redis.call('HSET', row, 'replicationStatus', 'PENDING', 'retries', 0, 'error', '', 'createdAt', ARGV[1],
               'updatedAt', ARGV[1])
    redis.call('ZADD', 'gantry:replq:' .. r, ARGV[1], id)
    table.insert(restarted, r)
  end
end
if #restarted > 0 and st == 'FAILED' then
  redis.call('HSET', KEYS[1], 'buildStatus', 'DEPLOYING', 'error', '', 'replicationFailed', '0')
  redis.call('HDEL', KEYS[1], 'finishedAt')
  redis.call('HINCRBY', 'gantry:statuscount', 'FAILED', -1)
  redis.call('HINCRBY', 'gantry:statuscount', 'DEPLOYING', 1)
end
if #restarted > 0 then audit(ARGV[2]) end
return restarted
"""

# A region's job ended. KEYS: build. ARGV: region, ok ('1'/'0'), row fields json, now, reason
# Returns the build's status after it: SUCCEEDED once every row is REPLICATED, FAILED on a
# failed region; unchanged if the build is no longer DEPLOYING (cancelled meanwhile).
_FINISH_REGION = """
local id = redis.call('HGET', KEYS[1], 'buildID')
if not id then return '' end
local row = 'gantry:repl:' .. id .. ':' .. ARGV[1]
for k, v in pairs(cjson.decode(ARGV[3])) do redis.call('HSET', row, k, v) end
redis.call('HSET', row, 'updatedAt', ARGV[4])
redis.call('ZREM', 'gantry:replq:' .. ARGV[1], id)
local st = redis.call('HGET', KEYS[1], 'buildStatus')
if st ~= 'DEPLOYING' then return st end
if ARGV[2] == '0' then
  redis.call('HSET', KEYS[1], 'buildStatus', 'FAILED', 'error', ARGV[5], 'finishedAt', ARGV[4],
             'replicationFailed', '1')
  redis.call('HINCRBY', 'gantry:statuscount', 'DEPLOYING', -1)
  redis.call('HINCRBY', 'gantry:statuscount', 'FAILED', 1)
  return 'FAILED'
end
for _, r in ipairs(redis.call('SMEMBERS', 'gantry:repl:' .. id)) do
  if redis.call('HGET', 'gantry:repl:' .. id .. ':' .. r, 'replicationStatus') ~= 'REPLICATED' then
    return 'DEPLOYING'
  end
end
redis.call('HSET', KEYS[1], 'buildStatus', 'SUCCEEDED', 'finishedAt', ARGV[4])
redis.call('HINCRBY', 'gantry:statuscount', 'DEPLOYING', -1)
redis.call('HINCRBY', 'gantry:statuscount', 'SUCCEEDED', 1)
return 'SUCCEEDED'
"""


def now_ms() -> int:
    return int(time.time() * 1000)


class BuildStore:
    def __init__(self, url: str, clock: Callable[[], int] = now_ms):
        opts = dict(socket_timeout=10, socket_connect_timeout=5, health_check_interval=15)
        self.r = redis.Redis.from_url(url, decode_responses=True, **opts)
        self.raw = redis.Redis.from_url(url, **opts)  # logs are read by byte offset
        self.clock = clock
        client = self.r
        self._create = client.register_script(_CREATE)
        self._transition = client.register_script(_TRANSITION)
        self._claim = client.register_script(_CLAIM)
        self._promote = client.register_script(_PROMOTE)
        self._check_in = client.register_script(_CHECK_IN)
        self._claim_delivery = client.register_script(_CLAIM_DELIVERY)
        self._restart_replication = client.register_script(_RESTART_REPLICATION)
        self._append_log = client.register_script(_APPEND_LOG)
        self._publish = client.register_script(_PUBLISH)
        self._finish_region = client.register_script(_FINISH_REGION)
        self.audit_log = AuditLog(client)

    # --- projects -------------------------------------------------------------------------

    def put_project(self, name: str, repo_url: str, options: dict | None = None, audit: str = "") -> bool:
        """Register or update a project; True if it is new. `options` holds the optional
        fields (webhookSecret, defaultBranch, coalesce, ratePerS, rateBurst) to set."""
        key = f"{P}project:{name}"
        with self.r.pipeline() as p:
            p.hsetnx(key, "createdAt", self.clock())
            p.hset(key, mapping={"name": name, "repoURL": repo_url,
                                 **{k: str(v) for k, v in (options or {}).items()}})
            p.sadd(f"{P}projects", name)
            if audit:
                self.audit_log.record(audit, client=p)
            created = p.execute()[0]
        return bool(created)

    def projects(self) -> list[str]:
        return sorted(self.r.smembers(f"{P}projects"))

    def get_project(self, name: str) -> dict | None:
        h = self.r.hgetall(f"{P}project:{name}")
        return h or None

    # --- builds ---------------------------------------------------------------------------

    def create_build(self, project: str, sha: str, details: dict | None = None,
                     priority: int = B.DEFAULT_PRIORITY, build_id: str | None = None,
                     audit: Callable[[str], str] | None = None) -> dict:
        """Queue a build; `audit(buildID)` gives the audit entry written with it."""
        build_id = build_id or B.new_build_id()
        created = self.clock()
        fields = {
            "buildID": build_id, "projectName": project, "commitSHA": sha,
            "buildDetails": json.dumps(details or {}), "buildStatus": BuildStatus.QUEUED.value,
            "createdAt": str(created), "retries": "0", "priority": str(priority),
            "queueBase": str(B.queue_base(priority)),
        }
        ok = self._create(
            keys=[f"{P}build:{build_id}", f"{P}builds:{project}", f"{P}queue", f"{P}seq"],
            args=[json.dumps(fields), B.index_member(created, build_id), audit(build_id) if audit else ""])
        if not ok:
            raise DuplicateBuild(build_id)
        return fields

    def get(self, build_id: str) -> dict | None:
        h = self.r.hgetall(f"{P}build:{build_id}")
        return h or None

    def projects_of(self, build_ids: list[str]) -> list[str | None]:
        """Each build's project (None for a build not in Redis)."""
        return [row[0] for row in read_fields(self.r, [f"{P}build:{b}" for b in build_ids], ("projectName",))]

    def build_for_delivery(self, project: str, delivery_id: str, create: Callable[[str], dict],
                           push: tuple[str, str] | None = None, ttl_s: int = 7 * 24 * 3600) -> tuple[dict, bool]:
        """The build a webhook delivery asked for, created once however often it is delivered,
        and once per signed body (`push` = (commit SHA, body digest)) whatever its delivery ID.
        Returns (record, created). The delivery is claimed with a build ID before the build is
        created, so a crash between the two steps is finished by the redelivery."""
        delivery = f"{P}delivery:{project}:{delivery_id}"
        keys = [delivery, f"{P}push:{project}:{push[0]}:{push[1]}" if push else delivery]
        build_id, new = self._claim_delivery(keys=keys, args=[B.new_build_id(), ttl_s])
        if new:
            return create(build_id), True
        rec = self.get(build_id)
        if rec is not None:
            return rec, False
        try:
            return create(build_id), True
        except DuplicateBuild:
            return self.get(build_id), False

    def supersede_queued(self, project: str, newer: dict, branch: str, audit: Callable[[str], str] | None = None,
                         scan: int = 500) -> list[str]:
        """Cancel the QUEUED builds of `branch` older than `newer`, each saying which build
        superseded it (and recording `audit(buildID)`). Returns their IDs."""
        members = self.r.zrange(f"{P}builds:{project}", 0, scan - 1, desc=True)
        rows = read_fields(self.r, [f"{P}build:{B.split_member(m)[1]}" for m in members],
                           ("buildID", "buildStatus", "buildDetails", "createdAt"))
        done = []
        for build_id, status, details, created in rows:
            if (build_id and build_id != newer["buildID"] and status == BuildStatus.QUEUED.value
                    and int(created) <= int(newer["createdAt"])
                    and json.loads(details or "{}").get("branch") == branch):
                try:
                    self.transition(build_id, BuildStatus.CANCELLED, fields={
                        "error": f"superseded by build {newer['buildID']}", "supersededBy": newer["buildID"]},
                        audit=audit(build_id) if audit else "")
                    done.append(build_id)
                except TransitionRefused:
                    pass  # it started meanwhile: it runs
        return done

    def list_page(self, project: str, limit: int, cursor: str | None = None) -> tuple[list[dict], str | None]:
        members = self.index_members(project, limit + 1, cursor)
        items, next_cursor = B.page(members, limit)
        found = self.summaries(items)
        return [found[m] for m in items if m in found], next_cursor

    def transition(self, build_id: str, to: BuildStatus, *, lease_owner: str = "",
                   fields: dict | None = None, delay_until_ms: int = 0, audit: str = "") -> BuildStatus:
        """Move a build to `to` if the rules allow it; returns the status it came from."""
        fields = {k: ("" if v is None else str(v)) for k, v in (fields or {}).items()}
        if to.terminal:
            fields.setdefault("finishedAt", str(self.clock()))
        if to is not BuildStatus.BUILDING:
            fields.setdefault("leaseOwner", "")
        allowed = ",".join(s.value for s in B.ALLOWED_FROM[to])
        ok, cur = self._transition(
            keys=[f"{P}build:{build_id}", f"{P}building", f"{P}queue", f"{P}delayed", f"{P}seq"],
            args=[to.value, allowed, lease_owner, json.dumps(fields), delay_until_ms, audit])
        if not ok:
            raise TransitionRefused(build_id, cur or None, to.value)
        return BuildStatus(cur)

    # --- archive ----------------------------------------------------------------------------

    def members_before(self, project: str, cutoff_ms: int, limit: int = 1000, after: str | None = None) -> list[str]:
        """Index members of builds created before cutoff_ms (and after the member `after`), oldest first."""
        return self.r.zrange(f"{P}builds:{project}", f"({after}" if after else "-", f"({cutoff_ms:013d}",
                             bylex=True, offset=0, num=limit)

    def index_members(self, project: str, limit: int, cursor: str | None) -> list[str]:
        start = f"({B.parse_cursor(cursor)}" if cursor else "+"
        return self.r.zrange(f"{P}builds:{project}", start, "-", desc=True, bylex=True, offset=0, num=limit)

    def summaries(self, members: list[str]) -> dict[str, dict]:
        """member -> build summary, for the members whose record is still here."""
        keys = ("buildID", "commitSHA", "buildStatus", "createdAt")
        rows = read_fields(self.r, [f"{P}build:{B.split_member(m)[1]}" for m in members], keys)
        return {m: B.summary(dict(zip(keys, row))) for m, row in zip(members, rows) if row[0]}

    def export(self, build_id: str) -> tuple[dict, list[dict], bytes]:
        """Everything kept about a build: its record, replication rows and log."""
        return self.get(build_id) or {}, self.replication_rows(build_id), self.read_log(build_id, 0, 1 << 62)

    def forget(self, project: str, archived: list[tuple[dict, list[dict]]], archive_key: str) -> None:
        """Drop archived builds (each its record and replication rows, as `export` gave them) from
        Redis, leaving a pointer to the Parquet file that has them."""
        members = [B.index_member(int(rec["createdAt"]), rec["buildID"]) for rec, _ in archived]
        newest = max([*members, self.newest_archived(project) or ""])
        with self.r.pipeline() as p:
            p.hset(f"{P}archivedNewest", project, newest)
            for (rec, repl), member in zip(archived, members):
                build_id = rec["buildID"]
                p.hset(f"{P}archived:{project}", build_id, archive_key)
                p.zrem(f"{P}builds:{project}", member)
                p.delete(f"{P}build:{build_id}", f"{P}repl:{build_id}", f"{P}log:{build_id}",
                         *(f"{P}repl:{build_id}:{row['region']}" for row in repl))
                p.hincrby(f"{P}statuscount", rec["buildStatus"], -1)
            p.execute()

    def newest_archived(self, project: str) -> str | None:
        """The index member of the newest archived build of the project, if any."""
        return self.r.hget(f"{P}archivedNewest", project)

    def archived_in(self, project: str, build_id: str) -> str | None:
        return self.r.hget(f"{P}archived:{project}", build_id)

    # --- scheduling -----------------------------------------------------------------------

    def claim_next(self, lease_owner: str) -> str | None:
        """Lease the next queued build to `lease_owner` and mark it BUILDING."""
        return self._claim(keys=[f"{P}queue", f"{P}building"], args=[self.clock(), lease_owner])

    def promote_due(self) -> int:
        return self._promote(keys=[f"{P}delayed", f"{P}queue", f"{P}seq"], args=[self.clock()])

    def check_in(self, build_id: str, lease_owner: str, heartbeat: bool) -> str | None:
        """The status as this attempt sees it (LEASE_LOST if it no longer holds the lease);
        with heartbeat=True also renews lastHeartbeat while the lease is held."""
        return self._check_in(keys=[f"{P}build:{build_id}"],
                              args=[self.clock() if heartbeat else "", lease_owner])

    def set_fields(self, build_id: str, fields: dict) -> None:
        """Descriptive fields only (never status or lease): those change through transition()."""
        self.r.hset(f"{P}build:{build_id}", mapping={k: str(v) for k, v in fields.items()})

    def building(self) -> list[dict]:
        ids = self.r.smembers(f"{P}building")
        return [h for h in read_hashes(self.r, [f"{P}build:{i}" for i in ids]) if h]

    def status_counts(self) -> dict[str, int]:
        counts = {s.value: 0 for s in BuildStatus}
        counts.update({k: int(v) for k, v in self.r.hgetall(f"{P}statuscount").items()})
        return counts

    def queue_depth(self) -> int:
        return self.r.zcard(f"{P}queue") + self.r.zcard(f"{P}delayed")

    def retry_or_dead(self, build: dict, reason: str, max_retries: int, backoff_s: float,
                      backoff_max_s: float) -> BuildStatus:
        """An infrastructure fault ended this attempt: re-queue with backoff, or DEAD.

        Conditional on the attempt's lease, so a fault reported twice (by the scheduler and by
        the heartbeat monitor) counts once.
        """
        retries = int(build.get("retries") or 0)
        to, backoff = B.retry_decision(retries, max_retries, backoff_s, backoff_max_s)
        fields = {"retries": retries + 1 if to is BuildStatus.QUEUED else retries,
                  "error": reason}
        ready_at = self.clock() + int(backoff * 1000) if to is BuildStatus.QUEUED else 0
        self.transition(build["buildID"], to, lease_owner=build.get("leaseOwner") or "",
                        fields=fields, delay_until_ms=ready_at)
        return to

    # --- replication ----------------------------------------------------------------------

    def publish_artifact(self, build_id: str, owner: str, fields: dict, primary: str,
                         others: list[str], primary_row: dict) -> BuildStatus:
        """BUILDING -> DEPLOYING with the artifact, replication rows and jobs, atomically.
        Returns DEPLOYING, or SUCCEEDED when there is no other region."""
        ok, status = self._publish(
            keys=[f"{P}build:{build_id}", f"{P}building"],
            args=[owner, json.dumps({k: str(v) for k, v in fields.items()}), self.clock(), primary,
                  json.dumps(others), json.dumps(primary_row)])
        if not ok:
            raise TransitionRefused(build_id, status or None, BuildStatus.DEPLOYING.value)
        return BuildStatus(status)

    def replication_rows(self, build_id: str) -> list[dict]:
        regions = sorted(self.r.smembers(f"{P}repl:{build_id}"))
        return [h for h in read_hashes(self.r, [f"{P}repl:{build_id}:{r}" for r in regions]) if h]

    def replication_row(self, build_id: str, region: str) -> dict:
        return self.r.hgetall(f"{P}repl:{build_id}:{region}")

    def due_replications(self, region: str, limit: int = 10) -> list[str]:
        return self.r.zrangebyscore(f"{P}replq:{region}", "-inf", self.clock(), start=0, num=limit)

    def update_replication(self, build_id: str, region: str, fields: dict, incr: dict | None = None) -> None:
        key = f"{P}repl:{build_id}:{region}"
        with self.r.pipeline() as p:
            p.hset(key, mapping={**{k: str(v) for k, v in fields.items()}, "updatedAt": self.clock()})
            for k, v in (incr or {}).items():
                p.hincrby(key, k, v)
            p.execute()

    def retry_replication(self, build_id: str, region: str, ready_at_ms: int, error: str) -> None:
        key = f"{P}repl:{build_id}:{region}"
        with self.r.pipeline() as p:
            p.hincrby(key, "retries", 1)
            p.hset(key, mapping={"replicationStatus": "RETRYING", "error": error, "updatedAt": self.clock()})
            p.zadd(f"{P}replq:{region}", {build_id: ready_at_ms})
            p.execute()

    def restart_replication(self, build_id: str, audit: str | None = None) -> list[str]:
        """Start again every region that gave up (its row FAILED); a build that failed only for
        that is DEPLOYING again. Returns the regions restarted (none: nothing to do)."""
        return self._restart_replication(keys=[f"{P}build:{build_id}", f"{P}repl:{build_id}"],
                                         args=[self.clock(), audit or ""])

    def finish_replication(self, build_id: str, region: str, ok: bool, reason: str = "") -> str:
        fields = {"replicationStatus": "REPLICATED" if ok else "FAILED", "error": reason}
        return self._finish_region(keys=[f"{P}build:{build_id}"],
                                   args=[region, "1" if ok else "0", json.dumps(fields), self.clock(),
                                         f"replication to {region} failed: {reason}"])

    # --- logs -----------------------------------------------------------------------------

    def append_log(self, build_id: str, text: str, cap: int) -> None:
        if text:
            self._append_log(keys=[f"{P}log:{build_id}"], args=[text, cap])

    def read_log(self, build_id: str, offset: int = 0, max_bytes: int = 1 << 20) -> bytes:
        return self.raw.getrange(f"{P}log:{build_id}", offset, offset + max_bytes - 1)

    def log_tail(self, build_id: str, n: int = 4096) -> str:
        return self.raw.getrange(f"{P}log:{build_id}", -n, -1).decode(errors="replace")

    def ping(self) -> bool:
        return bool(self.r.ping())
