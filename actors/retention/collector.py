"""One garbage-collection pass: expire the builds and caches each project's retention lets go,
move expired builds' records and logs to the archive, then mark and sweep every regional store.

Mark: every chunk and manifest that some kept manifest names. A kept manifest is the artifact of
any live build that is not EXPIRED (so a DEPLOYING build's replication, or a host downloading a
kept build, always finds its chunks) or a kept cache's. Manifests are read from the primary store
(or, failing that, any region); if one cannot be read, nothing is swept.

Sweep: the stores are listed first; then the sweep takes the fence (`state/gc.py`) at a moment no
writer is in flight (or, after the drain window, waits for those in flight while new ones wait),
marks again, and deletes what is listed, unmarked, and older than the grace.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Callable

from gantry import cursor as listing
from gantry.actors import metrics
from gantry.artifacts.blobstore import BlobStore, StoredObject, chunk_key, digest_of_key, manifest_key
from gantry.artifacts.manifest import Manifest
from gantry.clock import iso_ms
from gantry.retention import BuildFacts, CacheFacts, RetentionIn, decide_builds, decide_caches
from gantry.state import State, audit, keys
from gantry.state.connection import read_fields
from gantry.statuses import BuildStatus, DeploymentStatus
from gantry.topology import StackConfig

log = logging.getLogger("gantry.gc")
PREFIXES = ("chunks/", "manifests/")
DELETE_BATCH = 1000    # keys per DeleteObjects request


class MarkFailed(Exception):
    pass


@dataclass
class Options:
    grace_s: float = 3600.0          # an object written this recently is never swept
    drain_s: float = 600.0           # how long the sweep waits for the writers in flight
    lease_s: float = 60.0            # the sweep's lease, renewed while it works
    slack_s: float = 1.0             # S3 gives write times in whole seconds: an object is this much younger


@dataclass
class RegionTally:
    keptObjects: int = 0
    keptBytes: int = 0
    reclaimedObjects: int = 0
    reclaimedBytes: int = 0
    youngObjects: int = 0            # unmarked but inside the grace: left for a later pass


@dataclass
class Report:
    dryRun: bool
    startedAt: str = ""
    seconds: float = 0.0
    projects: dict = field(default_factory=dict)
    regions: dict = field(default_factory=dict)
    sweep: str = ""


def policy_of(project: dict) -> RetentionIn:
    return RetentionIn.model_validate(json.loads(project.get("retention") or "{}"))


class GarbageCollector:
    def __init__(self, state: State, stack: StackConfig, stores: dict[str, BlobStore], options: Options,
                 archive_move: Callable[[str, list[str]], int] | None = None):
        self.state, self.stack, self.stores, self.o = state, stack, stores, options
        self.archive_move = archive_move or (lambda project, ids: 0)

    def run(self, dry_run: bool = False, who: str = "gantry-gc") -> dict:
        t0 = time.monotonic()
        report = Report(dryRun=dry_run, startedAt=iso_ms(self.state.clock()))
        going: set[str] = set()        # builds and caches ("project/branch") that go in this pass (dry run: would)
        known: dict[str, set[str]] = {}  # manifest -> the keys it marks, read once a pass
        for name in self.state.projects.names():
            report.projects[name] = self._retain(name, dry_run, who, going)
        try:
            marked = self._mark(going, known)
        except MarkFailed as e:
            report.sweep = f"not swept: {e}"
            return self._done(report, t0)
        listed = {r: [o for p in PREFIXES for o in store.list_meta(p)] for r, store in self.stores.items()}
        if dry_run:
            for region, objects in listed.items():
                report.regions[region] = self._tally(objects, marked, time.time() - self.o.grace_s)[0].__dict__
            report.sweep = "dry run: nothing deleted"
            return self._done(report, t0)
        report.sweep = self._sweep(listed, report, known)
        return self._done(report, t0)

    # --- retention ------------------------------------------------------------------------------

    def _retain(self, name: str, dry_run: bool, who: str, going: set[str]) -> dict:
        project = self.state.projects.get(name) or {}
        policy, now = policy_of(project), self.state.clock()
        builds = self._live_builds(name)
        succeeded = [BuildFacts(b["buildID"], int(b["createdAt"]), b["pinned"] == "1")
                     for b in builds if b["buildStatus"] == BuildStatus.SUCCEEDED]
        verdicts = decide_builds(policy, succeeded, self.state.deployments.deployed_at(name), self._in_use(name), now)
        expired, kept = [], []
        for build_id, v in verdicts.items():
            if v.keep:
                kept.append({"buildID": build_id, "reasons": v.reasons})
                continue
            reason = v.reasons[0]
            if not dry_run:
                ok, why = self.state.retention.expire(name, build_id, reason, audit.prepare(
                    who, "build.expire", name, build_id, {"reason": reason}))
                if not ok:
                    kept.append({"buildID": build_id, "reasons": [f"not expired: {why}"]})
                    continue
            going.add(build_id)
            expired.append({"buildID": build_id, "reason": reason})
        to_archive = [b["buildID"] for b in builds if b["buildStatus"] == BuildStatus.EXPIRED]
        to_archive += [] if dry_run else [e["buildID"] for e in expired]
        archived = 0 if dry_run else self.archive_move(name, to_archive)
        return {"policy": policy.model_dump(), "expired": expired, "kept": kept,
                "caches": self._caches(name, policy, now, dry_run, going), "archived": archived}

    def _live_builds(self, name: str) -> list[dict]:
        ids = [listing.split(m)[1] for m in self.state.r.zrange(keys.builds(name), 0, -1)]
        fields = ("buildID", "buildStatus", "createdAt", "pinned", "artifactDigest")
        rows = read_fields(self.state.r, [keys.build(i) for i in ids], fields)
        return [dict(zip(fields, row)) for row in rows if row[0]]

    def _in_use(self, name: str) -> dict[str, str]:
        """build -> how it is in use: what rollbacks, datacenters and hosts need now."""
        use: dict[str, str] = {}
        desired = self.state.deployments.desired(name).get("buildID")
        for build_id in self.state.deployments.completed_builds(name):   # as `gantry rollback` picks
            rec = self.state.builds.get(build_id) if build_id != desired else None
            if rec and rec["buildStatus"] in (BuildStatus.SUCCEEDED, BuildStatus.DEPLOYING):
                use[build_id] = "what a rollback would pick"
                break
        for dep in self.state.deployments.desired_deployments():
            if dep.project == name and dep.status.active and dep.previous_build:
                use[dep.previous_build] = f"deployment {dep.deployment_id} rolls back to it"
        for dep_id in self.state.deployments.queue(name):
            if (dep := self.state.deployments.get(dep_id) or {}).get("status") == DeploymentStatus.QUEUED:
                use[dep["buildID"]] = f"deployment {dep_id} waits its turn to deploy it"
        for dc, build_id in self.state.deployments.dc_current(name).items():
            use[build_id] = f"datacenter {dc} runs it"
        for region in self.stack.regions:
            for dc in region.datacenters:
                for h in self.state.hosts.for_project(dc, name):
                    for f, how in (("stageBuildID", "stages"), ("targetBuildID", "is moving to"),
                                   ("activeBuildID", "runs")):
                        if h.get(f):
                            use[h[f]] = f"host {h['hostID']} in {dc} {how} it"
        if desired:
            use[desired] = "desired: the project's current deployment"
        return use

    def _caches(self, name: str, policy: RetentionIn, now: int, dry_run: bool, going: set[str]) -> list[dict]:
        entries = self.state.caches.all(name)
        facts = [CacheFacts(b, int(e.get("usedAt") or e.get("savedAt") or 0), int(e.get("bytes") or 0))
                 for b, e in entries.items()]
        out = []
        for branch, v in decide_caches(policy, facts, now).items():
            if v.keep:
                continue
            if dry_run or self.state.caches.drop(name, branch, entries[branch].get("savedAt")):
                going.add(f"{name}/{branch}")
                out.append({"branch": branch, "reason": v.reasons[0]})
        return out

    # --- mark and sweep -------------------------------------------------------------------------

    def _kept_manifests(self, going: set[str]) -> set[str]:
        kept = set()
        for name in self.state.projects.names():
            kept |= {b["artifactDigest"] for b in self._live_builds(name) if b["artifactDigest"]
                     and b["buildStatus"] != BuildStatus.EXPIRED and b["buildID"] not in going}
            for branch, entry in self.state.caches.all(name).items():
                if f"{name}/{branch}" not in going:
                    kept |= set(entry["paths"].values())
        return kept

    def _mark(self, going: set[str], known: dict[str, set[str]]) -> set[str]:
        """The keys of every kept manifest and of each chunk one names."""
        marked = set()
        for digest in self._kept_manifests(going):
            if digest not in known:
                known[digest] = {chunk_key(c.digest) for c in self._manifest(digest).chunks}
            marked |= known[digest]
            marked.add(manifest_key(digest))
        return marked

    def _manifest(self, digest: str) -> Manifest:
        for region in [self.stack.primary.name, *self.stores]:
            try:
                return Manifest.from_bytes(self.stores[region].get(manifest_key(digest)), expect_digest=digest)
            except Exception as e:
                log.warning("manifest %s not read from %s: %s", digest, region, e)
        raise MarkFailed(f"kept manifest {digest} is in no region's store")

    def _tally(self, objects: list[StoredObject], marked: set[str], before: float) -> tuple[RegionTally, list[str]]:
        t, doomed = RegionTally(), []
        for o in objects:
            if o.key in marked:
                t.keptObjects, t.keptBytes = t.keptObjects + 1, t.keptBytes + o.size
            elif o.written + self.o.slack_s >= before:
                t.youngObjects += 1
            else:
                t.reclaimedObjects, t.reclaimedBytes = t.reclaimedObjects + 1, t.reclaimedBytes + o.size
                doomed.append(o.key)
        return t, doomed

    def _sweep(self, listed: dict[str, list[StoredObject]], report: Report, known: dict[str, set[str]]) -> str:
        # Take the stores at a moment no writer is in flight, so none waits for a drain; only if
        # there is none within the drain window, take them anyway and wait for those in flight.
        deadline = time.monotonic() + self.o.drain_s
        while self.state.retention.writers_in_flight() > 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        token = self.state.retention.begin_sweep(self.o.lease_s)
        if token is None:
            return "not swept: another sweep holds the stores"
        try:
            deadline = time.monotonic() + self.o.drain_s
            while (n := self.state.retention.writers_in_flight()) > 0:
                if time.monotonic() > deadline:
                    return f"not swept: {n} writers still in flight after {self.o.drain_s:g} s; the next pass tries again"
                self.state.retention.renew_sweep(token, self.o.lease_s)
                time.sleep(0.2)
            marked = self._mark(set(), known)   # again: what the writers just recorded is kept
            before = time.time() - self.o.grace_s
            for region, objects in listed.items():
                tally, doomed = self._tally(objects, marked, before)
                for i in range(0, len(doomed), DELETE_BATCH):   # the lease is renewed batch by batch
                    if not self.state.retention.renew_sweep(token, self.o.lease_s):
                        return "stopped: the sweep's lease ran out (writers may have entered)"
                    self.stores[region].delete(doomed[i:i + DELETE_BATCH])
                report.regions[region] = tally.__dict__
                if tally.reclaimedObjects:     # a Ray counter takes only positive steps
                    metrics.gc_reclaimed_bytes().inc(max(1, tally.reclaimedBytes), tags={"region": region})
                    metrics.gc_reclaimed_objects().inc(tally.reclaimedObjects, tags={"region": region})
                metrics.gc_kept_bytes().set(tally.keptBytes, tags={"region": region})
                metrics.gc_kept_objects().set(tally.keptObjects, tags={"region": region})
            return "swept"
        except MarkFailed as e:
            return f"not swept: {e}"
        finally:
            self.state.retention.end_sweep(token)

    def _done(self, report: Report, t0: float) -> dict:
        report.seconds = round(time.monotonic() - t0, 3)
        out = report.__dict__
        if not report.dryRun:
            self.state.retention.save_report(out)
        log.info("gc: %s in %.1f s", report.sweep, report.seconds)
        return out

