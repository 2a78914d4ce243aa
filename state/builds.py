"""Builds: the records, each project's listing, the queue, leases and webhook deliveries.

Every status change is one Lua script, so it is atomic and conditional: a transition names the
statuses it may come from (`gantry.statuses.BUILD_FROM`) and, for a worker, the lease it holds.
A refused transition changes nothing and raises `TransitionRefused`.
"""
from __future__ import annotations

import json
from typing import Callable

import redis

from gantry import builds as rules
from gantry import cursor
from gantry.records import BuildRecord
from gantry.state import audit as audit_entries
from gantry.state import keys, scripts
from gantry.state.connection import read_fields, read_hashes
from gantry.statuses import BuildStatus


class TransitionRefused(Exception):
    def __init__(self, build_id: str, current: str | None, to: str):
        self.build_id, self.current, self.to = build_id, current, to
        super().__init__(f"build {build_id} is {current or 'unknown'}; cannot become {to}")


class DuplicateBuild(Exception):
    pass


def summary_of(h: dict[str, str]) -> dict:
    return {"buildID": h["buildID"], "commitSHA": h["commitSHA"], "buildStatus": h["buildStatus"],
            "createdAt": int(h["createdAt"])}


class Builds:
    def __init__(self, r: redis.Redis, clock: Callable[[], int]):
        self.r, self.clock = r, clock
        self._create = scripts.register(r, "create_build")
        self._transition = scripts.register(r, "transition_build")
        self._claim = scripts.register(r, "claim_build")
        self._promote = scripts.register(r, "promote_build")
        self._check_in = scripts.register(r, "check_in")
        self._claim_delivery = scripts.register(r, "claim_delivery")

    def create(self, project: str, sha: str, details: dict | None = None,
               priority: int = rules.DEFAULT_PRIORITY, build_id: str | None = None,
               audit: Callable[[str], str] | None = None) -> dict:
        """Queue a build; `audit(buildID)` gives the audit entry written with it."""
        build_id = build_id or rules.new_build_id()
        created = self.clock()
        fields = {
            "buildID": build_id, "projectName": project, "commitSHA": sha,
            "buildDetails": json.dumps(details or {}), "buildStatus": BuildStatus.QUEUED.value,
            "createdAt": str(created), "retries": "0", "priority": str(priority),
            "queueBase": str(rules.queue_base(priority)),
        }
        entry = audit(build_id) if audit else ""
        ok = self._create(
            keys=[keys.build(build_id), keys.builds(project), keys.queue(), keys.seq(), keys.statuscount(),
                  *audit_entries.keys_for(entry), keys.events()],
            args=[json.dumps(fields), cursor.key(created, build_id), entry])
        if not ok:
            raise DuplicateBuild(build_id)
        return fields

    def get(self, build_id: str) -> dict | None:
        return self.r.hgetall(keys.build(build_id)) or None

    def record(self, build_id: str) -> BuildRecord | None:
        h = self.get(build_id)
        return BuildRecord.from_hash(h) if h else None

    def for_delivery(self, project: str, delivery_id: str, create: Callable[[str], dict],
                     push: tuple[str, str] | None = None, ttl_s: int = 7 * 24 * 3600) -> tuple[dict, bool]:
        """The build a webhook delivery asked for, created once however often it is delivered,
        and once per signed body (`push` = (commit SHA, body digest)) whatever its delivery ID.
        Returns (record, created). The delivery is claimed with a build ID before the build is
        created, so a crash between the two steps is finished by the redelivery."""
        delivery = keys.delivery(project, delivery_id)
        claim = [delivery, keys.push(project, *push) if push else delivery]
        build_id, new = self._claim_delivery(keys=claim, args=[rules.new_build_id(), ttl_s])
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
        members = self.r.zrange(keys.builds(project), 0, scan - 1, desc=True)
        rows = read_fields(self.r, [keys.build(cursor.split(m)[1]) for m in members],
                           ("buildID", "buildStatus", "buildDetails", "createdAt"))
        done = []
        for build_id, status, details, created in rows:
            if (build_id and build_id != newer["buildID"] and status == BuildStatus.QUEUED
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

    # --- the listing --------------------------------------------------------------------------

    def index(self, project: str, limit: int, after: str | None = None) -> list[str]:
        """Listing keys of the project's builds, newest first, strictly after the cursor `after`."""
        start = f"({after}" if after else "+"
        return self.r.zrange(keys.builds(project), start, "-", desc=True, bylex=True, offset=0, num=limit)

    def page(self, project: str, limit: int, after: str | None = None) -> tuple[list[dict], str | None]:
        """A page of the builds in Redis (the API's listing adds the archive), and the next cursor."""
        members = self.index(project, limit + 1, after)
        items, next_cursor = cursor.page(members, limit)
        found = self.summaries(items)
        return [found[m] for m in items if m in found], next_cursor

    def index_before(self, project: str, cutoff_ms: int, limit: int = 1000, after: str | None = None) -> list[str]:
        """Listing keys of builds created before cutoff_ms (and after the key `after`), oldest first."""
        return self.r.zrange(keys.builds(project), f"({after}" if after else "-", f"({cutoff_ms:013d}",
                             bylex=True, offset=0, num=limit)

    def newest_succeeded(self, project: str, look_at: int = 5) -> dict | None:
        """The newest of the project's last `look_at` builds that SUCCEEDED (summary), if any."""
        found = self.summaries(self.index(project, look_at))
        return next((b for b in found.values() if b["buildStatus"] == BuildStatus.SUCCEEDED), None)

    def summaries(self, members: list[str]) -> dict[str, dict]:
        """listing key -> build summary (createdAt in ms), for the builds still in Redis."""
        return self.summaries_then_archived(members, "")[0]

    def summaries_then_archived(self, members: list[str], project: str) -> tuple[dict[str, dict], str | None]:
        """`summaries`, then (read after them, in the same round trip) the listing key of the
        project's newest archived build, if any: a build archived after its summary was
        missed is then counted in it."""
        fields = ("buildID", "commitSHA", "buildStatus", "createdAt")
        with self.r.pipeline(transaction=False) as p:
            for m in members:
                p.hmget(keys.build(cursor.split(m)[1]), *fields)
            if project:
                p.hget(keys.archived_newest(), project)
            rows = p.execute()
        newest = rows.pop() if project else None
        return {m: summary_of(dict(zip(fields, row))) for m, row in zip(members, rows) if row[0]}, newest

    # --- status -------------------------------------------------------------------------------

    def transition(self, build_id: str, to: BuildStatus, *, lease_owner: str = "",
                   fields: dict | None = None, delay_until_ms: int = 0, audit: str = "") -> BuildStatus:
        """Move a build to `to` if the rules allow it; returns the status it came from."""
        fields = {k: ("" if v is None else str(v)) for k, v in (fields or {}).items()}
        if to.terminal:
            fields.setdefault("finishedAt", str(self.clock()))
        if to is not BuildStatus.BUILDING:
            fields.setdefault("leaseOwner", "")
        ok, cur = self._transition(   # the script allows statuses.BUILD_FROM's moves only
            keys=[keys.build(build_id), keys.building(), keys.queue(), keys.delayed(), keys.seq(),
                  keys.statuscount(), *audit_entries.keys_for(audit), keys.events()],
            args=[to.value, "", lease_owner, json.dumps(fields), delay_until_ms, audit])
        if not ok:
            raise TransitionRefused(build_id, cur or None, to.value)
        return BuildStatus(cur)

    def set_fields(self, build_id: str, fields: dict) -> None:
        """Descriptive fields only (never status or lease): those change through transition()."""
        self.r.hset(keys.build(build_id), mapping={k: str(v) for k, v in fields.items()})

    def status_counts(self) -> dict[str, int]:
        counts = {s.value: 0 for s in BuildStatus}
        counts.update({k: int(v) for k, v in self.r.hgetall(keys.statuscount()).items()})
        return counts

    # --- the queue and leases -------------------------------------------------------------------

    def claim_next(self, lease_owner: str) -> str | None:
        """Lease the next queued build to `lease_owner` and mark it BUILDING."""
        while True:
            head = self.r.zrange(keys.queue(), 0, 0)
            if not head:
                return None
            if self.claim(head[0], lease_owner):
                return head[0]

    def claim(self, build_id: str, lease_owner: str) -> bool:
        """Lease this queued build to `lease_owner` and mark it BUILDING; False if it is not
        queued any more."""
        return self._claim(keys=[keys.queue(), keys.building(), keys.build(build_id), keys.statuscount()],
                           args=[build_id, self.clock(), lease_owner]) == 1

    def queued(self, limit: int) -> list[dict]:
        """The first `limit` queued builds' records, in queue order (priority, then arrival)."""
        ids = self.r.zrange(keys.queue(), 0, limit - 1)
        return [h for h in read_hashes(self.r, [keys.build(i) for i in ids]) if h]

    def promote_due(self) -> int:
        """Put retried builds whose backoff has passed back onto the queue."""
        due = self.r.zrangebyscore(keys.delayed(), "-inf", self.clock(), start=0, num=100)
        for build_id in due:
            self._promote(keys=[keys.delayed(), keys.queue(), keys.seq(), keys.build(build_id)], args=[build_id])
        return len(due)

    def check_in(self, build_id: str, lease_owner: str, heartbeat: bool) -> str | None:
        """The status as this attempt sees it (LEASE_LOST if it no longer holds the lease);
        with heartbeat=True also renews lastHeartbeat while the lease is held."""
        return self._check_in(keys=[keys.build(build_id)], args=[self.clock() if heartbeat else "", lease_owner])

    def building(self) -> list[dict]:
        ids = self.r.smembers(keys.building())
        return [h for h in read_hashes(self.r, [keys.build(i) for i in ids]) if h]

    def queue_depth(self) -> int:
        return self.r.zcard(keys.queue()) + self.r.zcard(keys.delayed())

    def retry_or_dead(self, build: dict, reason: str, max_retries: int, backoff_s: float,
                      backoff_max_s: float) -> BuildStatus:
        """An infrastructure fault ended this attempt: re-queue with backoff, or DEAD.

        Conditional on the attempt's lease, so a fault reported twice (by the scheduler and by
        the heartbeat monitor) counts once.
        """
        retries = int(build.get("retries") or 0)
        to, backoff = rules.retry_decision(retries, max_retries, backoff_s, backoff_max_s)
        fields = {"retries": retries + 1 if to is BuildStatus.QUEUED else retries, "error": reason}
        ready_at = self.clock() + int(backoff * 1000) if to is BuildStatus.QUEUED else 0
        self.transition(build["buildID"], to, lease_owner=build.get("leaseOwner") or "",
                        fields=fields, delay_until_ms=ready_at)
        return to
