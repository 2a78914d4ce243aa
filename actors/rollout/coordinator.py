"""One datacenter's rollout coordinator: host registry, tracker, and the datacenter's share of
each project's deployment. Plain logic over Redis; `actors.RolloutCoordinatorActor` runs it.

Each tick reads a snapshot of each desired deployment here, asks the one reconcile
(`gantry.rollout.reconcile`, which the simulator shares) for a plan, and writes it. A project
with `prestage` has its newest successful build staged before anyone deploys it.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from typing import Callable

from gantry.actors import metrics
from gantry.records import BuildRecord, Deployment, HostView
from gantry.rollout.approvals import approved
from gantry.rollout.dc_rollout import DcRollout
from gantry.rollout.hostmemory import HostMemory
from gantry.rollout.reconcile import Plan, Snapshot, reconcile, stage
from gantry.rollout.tracker import Tracker
from gantry.artifacts import bitfield
from gantry.artifacts.blobstore import chunk_key, manifest_key
from gantry.state import State
from gantry.state.host_cache import HostCache
from gantry.statuses import BuildStatus, DcPhase, DeploymentStatus, HostState, ReplicationStatus

log = logging.getLogger("gantry.coordinator")
MANIFEST_URL_REUSE_S = 300   # a manifest's signed URL is handed out this long (it lasts longer)
_NO_BUILD = BuildRecord("", "", BuildStatus.QUEUED)


def _activation(a: dict | None) -> dict | None:
    """What a host says its last activation took, as far as it is well formed (a host is not
    trusted: nothing else of it is stored)."""
    try:
        return {"project": str(a["project"])[:64], "buildID": str(a["buildID"])[:64], "seconds": float(a["seconds"])}
    except (KeyError, TypeError, ValueError):
        return None


class Coordinator:
    def __init__(self, dc: str, region: str, dcs_by_region: dict[str, list[str]], state: State,
                 lost_after_s: float = 15.0, clock: Callable[[], float] = time.time,
                 presign: Callable[[str], str] | None = None, manifest_chunks: Callable[[str], set[str]] | None = None,
                 peer_key: str = "", repair: Callable[[str], bool] | None = None,
                 memory: HostMemory | None = None, stage_timeout_s: float = 600.0,
                 stage_min_bytes_per_s: float = 10e6, distrust_s: float = 60.0):
        self.dc, self.region, self.dcs_by_region = dc, region, dcs_by_region
        self.peer_key = peer_key   # given to this datacenter's hosts: their peer credential
        self.repair_chunk = repair or (lambda digest: False)   # re-copies a chunk from the primary
        # Hosts hold no store credentials: they get short-lived URLs in the region's store for the
        # manifest and chunks of their target build (presign: object key -> URL).
        self.presign = presign or (lambda key: "")
        self.manifest_chunks = manifest_chunks or (lambda artifact: set())   # cached below
        self._chunks: dict[str, set[str]] = {}
        self._counts: dict[str, int] = {}
        self.state, self.lost_after_s, self.clock = state, lost_after_s, clock
        self.tracker = Tracker(distrust_s=distrust_s)
        # a host that has not staged within this (plus the artifact's size at the rate) is FAILED for its wave
        self.stage_timeout_s, self.stage_min_bytes_per_s = stage_timeout_s, stage_min_bytes_per_s
        self._staging_began: dict[str, float] = {}   # deployment -> when this datacenter began staging it
        self.memory = memory or HostMemory()   # soft state: liveness, what Redis holds, targets' versions
        self.hosts = HostCache(state.r, dc)   # the host records, read again only where they changed
        self.started = clock()
        self.first_report: float | None = None   # since it started: hosts can reach it (the API is up)
        self._build_info: dict[str, dict] = {}
        self._held: set[tuple[str, str]] = set()   # (build, region) whose replica has landed
        self._manifest_urls: dict[str, tuple[str, float]] = {}   # manifest digest -> (signed URL, reuse until)
        self.lock = threading.Lock()
        self.on_news: Callable[[], None] = lambda: None   # a host's report changed: the loop steps sooner

    # --- what hosts call (at the coordinator's own endpoint in its region) ---------------------

    def heartbeat(self, host_id: str, address: str, projects: dict[str, dict], artifacts: list[dict] = (),
                  serving: list[str] | None = None, download: dict | None = None, rack: str = "",
                  allowed: frozenset[str] | None = None, activation: dict | None = None) -> dict:
        """A host's report: `projects` maps each project it knows to {state, activeBuildID, error,
        about} (about: the build that state concerns, see node_daemon.slot.report_about; a
        rollout counts a report only for that build), `artifacts` what it holds of each artifact
        it has ({artifact, chunks: n, bits | add, complete}: a whole bitfield or the bits added
        since the last one the coordinator took), `serving` the projects it serves (None: every
        one), `download` and `activation` its last download and activation (the predictions
        use them). The answer gives, per project, the target and the build to stage with what
        installing them needs, the artifacts to announce in full again (`resend`), when to
        report next (`reportInS`) and the version of its targets (`version`, see `watch`).

        `allowed` is what the host's token lets it serve (None: every project): what it says it
        serves, and what it reports, count only within it. Announces count only for the
        artifacts of its own targets, with their manifests' chunk counts."""
        now = self.clock()
        self.first_report = self.first_report or now
        if allowed is not None:
            serving = sorted(allowed if serving is None else set(serving) & allowed)
            projects = {p: r for p, r in projects.items() if p in allowed}
        activation = _activation(activation)
        fields = {"address": address, "rack": rack, **({"lastDownload": json.dumps(download)} if download else {}),
                  **({"lastActivation": json.dumps(activation)} if activation else {})}
        reported = {p: {"state": r.get("state"), "activeBuildID": r.get("activeBuildID"), "error": r.get("error") or "",
                        "ackedTargetBuildID": r.get("about")} for p, r in projects.items()}
        report = (json.dumps(fields, sort_keys=True), json.dumps(reported, sort_keys=True),
                  json.dumps(serving))
        held = [(a["artifact"], a.get("bits") is not None, bitfield.decode(a.get("bits") or a.get("add") or "",
                 int(a.get("chunks") or 0)), bool(a.get("complete"))) for a in artifacts]   # bad bits: nothing written
        with self.lock:
            news = self.memory.is_news(host_id, report)
            write = self.memory.needs_write(host_id, report, now)
            version = self.memory.version(host_id)
            targets = self.memory.targets(host_id)
        if write:   # a transition (or a refresh): the only reports Redis sees
            targets = self.state.hosts.report(host_id, self.region, self.dc, fields, reported, serving)
            with self.lock:
                self.memory.wrote(host_id, report, targets, version, now)
            if news:
                self.on_news()
        metrics.host_reports().inc(tags={"dc": self.dc, "written": str(write).lower()})
        resend = []
        mine = self._artifacts_of(targets) if held else set()   # it announces only these, with their real chunk counts
        held = [h for h, a in zip(held, artifacts)
                if a["artifact"] in mine and self._chunk_count(a["artifact"]) == int(a.get("chunks") or 0)]
        with self.lock:
            for artifact, whole, bits, complete in held:
                full = bitfield.full(self._chunk_count(artifact))
                if whole:
                    self.tracker.announce(artifact, host_id, address, bits, complete and bits == full, now, rack)
                elif not self.tracker.add(artifact, host_id, bits, complete, now, full):
                    resend.append(artifact)   # bits added to a bitfield it never took: send the whole one
            interval = self.memory.interval(reported, targets)
        answer = {}
        for project, (target, stage) in targets.items():
            info = {"targetBuildID": target or None}
            if target:
                info.update(self._install_info(target))
            if stage and stage != target:
                info["stage"] = {"buildID": stage, **self._install_info(stage)}
            answer[project] = info
        return {"projects": answer, "peerKey": self.peer_key, "resend": resend, "reportInS": interval,
                "version": version}

    def _artifacts_of(self, targets: dict[str, tuple[str, str]]) -> set[str]:
        """The artifacts of the builds a host is told to run or stage."""
        builds = {b for pair in targets.values() for b in pair if b}
        return {self._deploy_info(b).get("manifestDigest") for b in builds} - {None}

    def _chunk_count(self, artifact: str) -> int:
        """Its manifest's number of unique chunks (kept for many more artifacts than the chunk sets)."""
        n = self._counts.get(artifact)
        if n is None:
            n = len(self._chunk_set(artifact))
            self._counts = {**dict(list(self._counts.items())[-255:]), artifact: n}
        return n

    def _chunk_set(self, artifact: str) -> set[str]:
        with self.lock:
            chunks = self._chunks.get(artifact)
        if chunks is None:
            chunks = self.manifest_chunks(artifact)
            with self.lock:
                self._chunks = {**dict(list(self._chunks.items())[-7:]), artifact: chunks}   # a few builds
        return chunks

    def _targets(self, host_id: str) -> dict[str, tuple[str, str]]:
        with self.lock:
            wanted = self.memory.targets(host_id)
        return wanted or self.state.hosts.wanted(self.dc, host_id)

    def watch_version(self, host_id: str) -> int:
        """The version of the host's targets; it changes whenever one is set."""
        with self.lock:
            return self.memory.version(host_id)

    def _install_info(self, build_id: str) -> dict:
        info = dict(self._deploy_info(build_id))
        digest = info.get("manifestDigest")
        if digest:   # one signed URL a few minutes, not one per report
            url, until = self._manifest_urls.get(digest, ("", 0.0))
            if until < self.clock():
                url, until = self.presign(manifest_key(digest)), self.clock() + MANIFEST_URL_REUSE_S
                self._manifest_urls[digest] = (url, until)
            info["manifestURL"] = url
        return info

    def origin_urls(self, host_id: str, artifact: str, digests: list[str]) -> dict[str, str] | None:
        """URLs in the region's store for chunks of a build the host is told to run or stage;
        None if the artifact is no such build's or a digest is not one of its chunks."""
        if artifact not in self._artifacts_of(self._targets(host_id)):
            return None
        if not set(digests) <= self._chunk_set(artifact):
            return None
        return {d: self.presign(chunk_key(d)) for d in digests}

    def _deploy_info(self, build_id: str) -> dict:
        """What a host needs to install a build; fixed once the build is deployable, so cached."""
        info = self._build_info.get(build_id)
        if info is None:
            rec = self.state.builds.record(build_id) or _NO_BUILD
            info = {"manifestDigest": rec.artifact_digest, "deployStart": rec.deploy_start,
                    "deployHealth": rec.deploy_health, "artifactSize": rec.artifact_size}
            if info["manifestDigest"]:
                self._build_info[build_id] = info
        return info

    def peers(self, host_id: str, address: str, artifact: str, chunks: int, wanted: str, have: str,
              rack: str = "", failed: list[str] = (), busy: list[str] = (), served: list[str] = ()) -> dict | None:
        """For the chunks a host still wants (a bitfield), the peers that hold some of them
        ({address, bits}) and the ones it should fetch from the origin itself (`origin`). `have`
        is its whole bitfield: asked several times a second while it downloads, this keeps the
        tracker's view of it fresh between reports. `failed`: peers that answered that they lack
        chunks they claim (they lose their claims); `busy`: peers that answered only 503 for long
        (unless others vouch for them, their claims stop holding chunks back from the origin);
        `served`: peers that gave it verified chunks (they are vouched for). None if the artifact
        is not one of the host's targets' or `chunks` is not its chunk count."""
        want, held = bitfield.decode(wanted, chunks), bitfield.decode(have, chunks)   # a bad bitfield: 400 first
        if artifact not in self._artifacts_of(self._targets(host_id)) or self._chunk_count(artifact) != chunks:
            return None
        now = self.clock()
        with self.lock:
            for peer in served:
                self.tracker.vouch(artifact, peer)
        for peers, judge, what in ((failed, self.tracker.distrust, "lacks chunks it claims; its claims are dropped"),
                                   (busy, self.tracker.doubt, "served nothing but 503; its claims hold nothing back")):
            for peer in peers:
                with self.lock:
                    liar = judge(artifact, peer, now)
                if liar:
                    log.warning("%s: host %s says %s (%s) %s (%s)", self.dc, host_id, liar, peer, what, artifact)
                    self.state.hosts.note(self.dc, liar, "distrusted",
                                          f"{artifact} at {int(now)}: {what}, reported by {host_id}")
        with self.lock:
            peers, origin = self.tracker.ask(artifact, host_id, address, held, held == bitfield.full(chunks), want,
                                             now, rack)
        return {"peers": [{"address": a, "bits": bitfield.encode(b)} for a, b in peers if b],
                "origin": bitfield.encode(origin)}

    def repair(self, host_id: str, digest: str) -> bool | None:
        """A host got a bad copy of `digest` from the region's store: heal the store's copy. None
        if the chunk is not one of the host's targets' (a store read and a hash per call, and
        an oracle of what the store holds, are not for any digest)."""
        if not any(digest in self._chunk_set(a) for a in self._artifacts_of(self._targets(host_id))):
            return None
        log.warning("host %s in %s got a bad copy of %s from the regional store", host_id, self.dc, digest)
        return self.repair_chunk(digest)

    # --- the loop ---------------------------------------------------------------------------

    def tick(self) -> None:
        now = self.clock()
        hosts = self.hosts.in_dc()
        lost_after = self.memory.lost_after(self.lost_after_s)
        # A host not heard from since a restart gets a full period from the first report any host
        # made since (its path here works: the API is up and names this endpoint); while none has
        # reported, three periods from the start (the rest of the control plane may be starting).
        since, wait = (self.first_report, lost_after) if self.first_report else (self.started, 3 * lost_after)
        for h in hosts:
            with self.lock:   # memory knows
                seen = self.memory.last_seen(h["hostID"])
            silent = now - (seen or max(int(h.get("updatedAt") or 0) / 1000, since))
            if h.get("state") != HostState.LOST and silent > (lost_after if seen else wait):
                self.state.hosts.mark_lost(self.dc, h["hostID"])
                h["state"], h["lostAt"] = HostState.LOST, str(int(now * 1000))
                self.hosts.forget(h["hostID"])
                with self.lock:
                    self.memory.mark_lost(h["hostID"])
                    self.tracker.forget(h["hostID"])
        with self.lock:   # entries of artifacts a host no longer announces, and of silent hosts
            self.tracker.expire(now, lost_after)
        states: Counter = Counter()   # (host, project) pairs by state
        projects = self.state.deployments.projects_with_desired_state()
        desired = {d.project: d for d in self.state.deployments.desired_deployments(projects)}
        self.state.deployments.promote_waiting([p for p in projects if p not in desired or not desired[p].status.active])
        with self.lock:
            unheard = [h["hostID"] for h in hosts if h.get("state") != HostState.LOST and not self.memory.last_seen(h["hostID"])]
        for dep in desired.values():
            if unheard and dep.status.active:
                continue   # since its start: a wave is judged on what its hosts say now, not before a restart
            states.update(v.state for v in self._drive(dep, now).values())
        for project in self.state.projects.prestaged():
            self._prestage(project, desired.get(project))
        gauge = metrics.rollout_hosts()
        for state in HostState:
            gauge.set(states[state], tags={"dc": self.dc, "state": state.value})

    def _set(self, host: str, project: str, target: str | None = None, stage: str | None = None) -> None:
        """Write a host's target or build to stage, and wake the host if it waits for news."""
        if target is not None:
            self.state.hosts.set_target(self.dc, host, project, target)
        if stage is not None:
            self.state.hosts.set_stage(self.dc, host, project, stage)
        with self.lock:
            self.memory.set(host, project, target, stage)

    def _holds(self, build_id: str, region: str) -> bool:
        """Whether the region's blob store holds the build: a build is deployable in a region
        once that region's replica landed, even while others are still replicating."""
        if (build_id, region) in self._held:
            return True
        row = self.state.replication.record(build_id, region)
        if row is not None and row.status == ReplicationStatus.REPLICATED:
            self._held.add((build_id, region))
            return True
        return False

    def _prestage(self, project: str, dep: Deployment | None) -> None:
        """Stage the project's newest successful build if it is newer than its desired one (and
        no deployment is under way: that one decides what is staged)."""
        if dep and dep.status.active:
            return
        newest = self.state.builds.newest_succeeded(project)
        if newest is None or (dep and dep.build_id == newest["buildID"]):
            return
        if dep and (self.state.builds.record(dep.build_id) or _NO_BUILD).created_at > newest["createdAt"]:
            return
        if self._holds(newest["buildID"], self.region):
            plan = Plan()
            stage(newest["buildID"], self.hosts.views(project).values(), plan)
            self._apply(project, plan)

    def snapshot(self, dep: Deployment, now: float) -> Snapshot:
        """What this datacenter knows of a deployment, read from Redis (and the caches above).
        A finished deployment needs only its hosts and the build the datacenter runs; the rest
        is read only while it is in flight, or while this datacenter may have hosts to take back."""
        deps, dep_id = self.state.deployments, dep.deployment_id
        snap = Snapshot(dc=self.dc, region=self.region, dcs_by_region=self.dcs_by_region, deployment=dep,
                        hosts=self.hosts.views(dep.project), holding=set(), staged_dcs=set(),
                        outcomes={}, rollout=None, current=deps.dc_current(dep.project).get(self.dc), now=now)
        active = dep.status.active
        if not active and dep.status != DeploymentStatus.ROLLED_BACK:
            if dep.regions and self.region not in dep.regions and snap.current != dep.build_id \
                    and self._holds(dep.build_id, self.region):
                snap.holding = {self.region}   # this region joined during it: its hosts converge now
            return snap
        snap.outcomes = deps.dc_outcomes(dep_id)
        if not active and snap.outcomes.get(self.dc) not in (None, DcPhase.DONE):
            return snap   # taken back already, or never started here
        saved = deps.load_rollout(dep_id, self.dc)
        snap.rollout = DcRollout.from_dict(saved) if saved else None
        if not active:
            return snap
        snap.holding = {r for r in self.dcs_by_region if self._holds(dep.build_id, r)}
        if dep.analysis:
            snap.analysis = self.state.analyses.verdicts(dep_id, self.dc)
        if dep.strategy.get("approve"):
            snap.approved = approved(dep.strategy, self.state.approvals.given(dep_id))
        if self.region not in snap.holding:
            rec = self.state.builds.record(dep.build_id)
            snap.build_status, snap.build_error = (rec.status, rec.error) if rec else (None, "")
        if dep.stage_all:
            snap.staged_dcs = deps.staged_dcs(dep_id)
            snap.staging_began = self._staging_began.get(dep_id)
            if snap.staging_began is None:
                snap.staging_began = deps.staging_began(dep_id, self.dc)
                if snap.staging_began is not None:
                    self._remember_staging(dep_id, snap.staging_began)
        snap.stage_deadline_s = (self.stage_timeout_s + self._deploy_info(dep.build_id).get("artifactSize", 0)
                                 / self.stage_min_bytes_per_s)
        return snap

    def _remember_staging(self, dep_id: str, began: float) -> None:
        self._staging_began = {dep_id: began, **dict(list(self._staging_began.items())[-15:])}

    def _drive(self, dep: Deployment, now: float) -> dict[str, HostView]:
        """One step of the project's desired deployment here: read, reconcile, apply."""
        snap = self.snapshot(dep, now)
        before = (snap.rollout.wave, snap.rollout.phase) if snap.rollout else (0, None)
        plan = reconcile(snap)
        self._apply(dep.project, plan, dep, snap.stage_deadline_s)
        after = plan.rollout
        finished = after is not None and after.phase == DcPhase.DONE and before[1] != DcPhase.DONE
        if after is not None and (after.wave > before[0] or finished):   # people may hear of each wave done
            self.state.events.emit("wave", dep.deployment_id, dep.project, DcPhase.DONE, dc=self.dc, wave=before[0] + 1)
        return snap.hosts

    def _apply(self, project: str, plan: Plan, dep: Deployment | None = None, deadline_s: float = 0.0) -> None:
        """Write a plan to Redis, in the order that lets a coordinator that dies half way
        through redo the rest from what it reads next."""
        deps, dep_id = self.state.deployments, dep.deployment_id if dep else ""
        for host, build in plan.stages.items():
            self._set(host, project, stage=build)
        if plan.staging_began is not None:
            self._remember_staging(dep_id, deps.begin_staging(dep_id, self.dc, plan.staging_began))
        for host in plan.late:
            log.warning("%s: host %s did not stage %s within %.0f s; it counts as failed for its wave",
                        self.dc, host, dep.build_id, deadline_s)
            self.state.hosts.mark_stage_late(self.dc, host, project, dep.build_id)
        if plan.staged:
            deps.mark_staged(dep_id, self.dc)
        for host, build in plan.targets.items():
            self._set(host, project, target=build)
        if plan.rollout is not None:
            deps.save_rollout(dep_id, self.dc, plan.rollout.to_dict())
        if plan.current:
            deps.set_dc_current(project, self.dc, plan.current)
        if plan.outcome:
            deps.mark_dc(dep_id, self.dc, plan.outcome)
        if plan.status:
            deps.set_status(dep_id, *plan.status, fields={"awaiting": plan.awaiting} if plan.awaiting else None)


