"""One datacenter's rollout coordinator: host registry, tracker, and the datacenter's share of
each project's deployment. Plain logic over Redis; `actors.RolloutCoordinatorActor` runs it.

Regions go one after another in the deployment's order: a datacenter starts only when every
datacenter of the earlier regions is DONE. A datacenter that rolls back marks the deployment
ROLLED_BACK, and every datacenter that had moved hosts rolls back too.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from typing import Callable

from gantry.actors import metrics
from gantry.actors.rollout.dc_rollout import DcRollout, HostView
from gantry.actors.rollout.tracker import Tracker
from gantry.actors.rollout.waves import Strategy
from gantry.artifacts.blobstore import chunk_key, manifest_key
from gantry.state import State
from gantry.statuses import (DEPLOYMENT_ACTIVE, BuildStatus, DcPhase, DeploymentStatus, HostState,
                             ReplicationStatus)

log = logging.getLogger("gantry.coordinator")


class Coordinator:
    def __init__(self, dc: str, region: str, dcs_by_region: dict[str, list[str]], state: State,
                 lost_after_s: float = 15.0, clock: Callable[[], float] = time.time,
                 presign: Callable[[str], str] | None = None, manifest_chunks: Callable[[str], set[str]] | None = None,
                 peer_key: str = "", repair: Callable[[str], bool] | None = None):
        self.dc, self.region, self.dcs_by_region = dc, region, dcs_by_region
        self.peer_key = peer_key   # given to this datacenter's hosts: their peer credential
        self.repair_chunk = repair or (lambda digest: False)   # re-copies a chunk from the primary
        # Hosts hold no store credentials: they get short-lived URLs in the region's store for the
        # manifest and chunks of their target build (presign: object key -> URL).
        self.presign = presign or (lambda key: "")
        self.manifest_chunks = manifest_chunks or (lambda artifact: set())   # cached below
        self._chunks: dict[str, set[str]] = {}
        self.state, self.lost_after_s, self.clock = state, lost_after_s, clock
        self.tracker = Tracker()
        self._build_info: dict[str, dict] = {}
        self._held: set[tuple[str, str]] = set()   # (build, region) whose replica has landed
        self.lock = threading.Lock()

    # --- what hosts call (through the API gateway) -------------------------------------------

    def heartbeat(self, host_id: str, address: str, projects: dict[str, dict], artifacts: list[dict] = (),
                  serving: list[str] | None = None, download: dict | None = None) -> dict:
        """A host's report: `projects` maps each project it knows to {state, activeBuildID, error,
        about} (about: the build that state concerns, see node_daemon.daemon.report_about; a
        rollout counts a report only for that build), `artifacts` the chunks it holds of each
        artifact it has ({artifact, chunks, complete}), `serving` the projects it serves (None:
        every one). The answer gives, per project, the target and what installing it needs."""
        fields = {"address": address}
        if download:
            fields["lastDownload"] = json.dumps(download)
        reported = {p: {"state": r.get("state"), "activeBuildID": r.get("activeBuildID"), "error": r.get("error") or "",
                        "ackedTargetBuildID": r.get("about")} for p, r in projects.items()}
        targets = self.state.hosts.report(host_id, self.region, self.dc, fields, reported, serving)
        with self.lock:
            for a in artifacts:
                self.tracker.announce(a["artifact"], host_id, address, set(a.get("chunks") or ()),
                                      bool(a.get("complete")), self.clock())
        answer = {}
        for project, target in targets.items():
            info = {"targetBuildID": target}
            if target:
                info.update(self._deploy_info(target))
                if info.get("manifestDigest"):
                    info["manifestURL"] = self.presign(manifest_key(info["manifestDigest"]))
            answer[project] = info
        return {"projects": answer, "peerKey": self.peer_key}

    def origin_urls(self, host_id: str, artifact: str, digests: list[str]) -> dict[str, str] | None:
        """URLs in the region's store for chunks of one of the host's target builds; None if the
        artifact is no target's or a digest is not one of its chunks."""
        targets = self.state.hosts.targets(host_id).values()
        if artifact not in {self._deploy_info(t).get("manifestDigest") for t in targets}:
            return None
        with self.lock:
            chunks = self._chunks.get(artifact)
        if chunks is None:
            chunks = self.manifest_chunks(artifact)
            with self.lock:
                self._chunks = {**dict(list(self._chunks.items())[-7:]), artifact: chunks}   # a few builds
        if not set(digests) <= chunks:
            return None
        return {d: self.presign(chunk_key(d)) for d in digests}

    def _deploy_info(self, build_id: str) -> dict:
        """What a host needs to install a build; fixed once the build is deployable, so cached."""
        info = self._build_info.get(build_id)
        if info is None:
            rec = self.state.builds.get(build_id) or {}
            info = {"manifestDigest": rec.get("artifactDigest"), "deployStart": rec.get("deployStart") or "",
                    "deployHealth": rec.get("deployHealth") or ""}
            if info["manifestDigest"]:
                self._build_info[build_id] = info
        return info

    def peers(self, host_id: str, artifact: str, wanted: list[str]) -> dict[str, list[str]]:
        """chunk digest -> addresses of peers holding it, for the chunks the host still wants."""
        with self.lock:
            return self.tracker.peer_map(artifact, host_id, set(wanted))

    def repair(self, host_id: str, digest: str) -> bool:
        """A host got a bad copy of `digest` from the region's store: heal the store's copy."""
        log.warning("host %s in %s got a bad copy of %s from the regional store", host_id, self.dc, digest)
        return self.repair_chunk(digest)

    # --- the loop ---------------------------------------------------------------------------

    def tick(self) -> None:
        now = self.clock()
        hosts = self.state.hosts.in_dc(self.dc)
        for h in hosts:
            if h.get("state") != HostState.LOST and now * 1000 - int(h.get("updatedAt") or 0) > self.lost_after_s * 1000:
                self.state.hosts.mark_lost(h["hostID"])
                h["state"], h["lost"] = HostState.LOST, "1"
                with self.lock:
                    self.tracker.forget(h["hostID"])
        with self.lock:   # entries of artifacts a host no longer announces, and of silent hosts
            self.tracker.expire(now, self.lost_after_s)
        states: Counter = Counter()   # (host, project) pairs by state
        for dep in self.state.deployments.desired_deployments():
            views = self.state.hosts.for_project(self.dc, dep["projectName"], hosts)
            states.update(h["state"] for h in views)
            self._drive(dep, {h["hostID"]: HostView(
                h["hostID"], h.get("activeBuildID") or None, h["state"], h.get("targetBuildID") or None,
                h.get("ackedTargetBuildID") or None, h.get("sentTargetBuildID") or None) for h in views}, now)
        gauge = metrics.rollout_hosts()
        for state in HostState:
            gauge.set(states[state], tags={"dc": self.dc, "state": state.value})

    def _holds(self, build_id: str, region: str) -> bool:
        """Whether the region's blob store holds the build: a build is deployable in a region
        once that region's replica landed, even while others are still replicating."""
        if (build_id, region) in self._held:
            return True
        row = self.state.replication.row(build_id, region)
        if row.get("replicationStatus") == ReplicationStatus.REPLICATED:
            self._held.add((build_id, region))
            return True
        return False

    def _my_turn(self, dep: dict) -> bool:
        """Regions go in the deployment's order; an earlier region still waiting for its replica
        does not hold up the ones after it."""
        order = json.loads(dep["regions"])
        if self.region not in order:
            return False
        earlier = order[: order.index(self.region)]
        outcomes = self.state.deployments.dc_outcomes(dep["deploymentID"])
        return all(outcomes.get(dc) == DcPhase.DONE for r in earlier if self._holds(dep["buildID"], r)
                   for dc in self.dcs_by_region.get(r, []))

    def _replica_missing(self, dep: dict) -> bool:
        """True while this region waits for the build's replica. A build that ended without one
        is a failed build: the deployment rolls back wherever it had moved hosts."""
        if self._holds(dep["buildID"], self.region):
            return False
        rec = self.state.builds.get(dep["buildID"]) or {}
        status = rec.get("buildStatus", "missing")
        if status not in (BuildStatus.DEPLOYING, BuildStatus.SUCCEEDED):
            self.state.deployments.set_status(dep["deploymentID"], DeploymentStatus.ROLLED_BACK, DEPLOYMENT_ACTIVE,
                                  f"build {dep['buildID']} is {status}: {rec.get('error') or 'no replica in ' + self.region}")
        return True

    def _drive(self, dep: dict, hosts: dict[str, HostView], now: float) -> None:
        """Step this datacenter's rollout of the project's desired deployment; where none is
        moving here, converge every host that serves the project to its current build here (a
        host that joined or came back late, whatever the deployment's status)."""
        if not self._roll(dep, hosts, now):
            current = self.state.deployments.dc_current(dep["projectName"]).get(self.dc)
            for host, v in hosts.items():
                if current and v.state != HostState.LOST and v.target_build != current:
                    self.state.hosts.set_target(host, dep["projectName"], current)

    def _roll(self, dep: dict, hosts: dict[str, HostView], now: float) -> bool:
        """True while a rollout of `dep` moves (or holds, paused) hosts here."""
        dep_id, status, project = dep["deploymentID"], dep["status"], dep["projectName"]
        if status == DeploymentStatus.ROLLED_BACK:  # take back what this datacenter moved, once
            if self.state.deployments.dc_outcomes(dep_id).get(self.dc) not in (None, DcPhase.DONE):
                return False
        elif status not in DEPLOYMENT_ACTIVE or not self._my_turn(dep):
            return False
        saved = self.state.deployments.load_rollout(dep_id, self.dc)
        rollout = DcRollout.from_dict(saved) if saved else None
        if rollout is None and status != DeploymentStatus.ROLLED_BACK and self._replica_missing(dep):
            return False
        if status == DeploymentStatus.ROLLED_BACK:
            if rollout is None:  # never started here: nothing to take back
                self.state.deployments.mark_dc(dep_id, self.dc, DcPhase.UNTOUCHED)
                return False
            rollout.roll_back(dep.get("reason") or "rolled back")
        live = [h for h, v in hosts.items() if v.state != HostState.LOST]
        if rollout is None:
            s = json.loads(dep["strategy"])
            rollout = DcRollout.start(dep["buildID"], dep.get("previousBuildID") or None, live, Strategy(
                steps=tuple(s["steps"]), min_healthy=s["minHealthy"], bake_s=s["bakeS"]))
        if status == DeploymentStatus.PAUSED:
            rollout.pause()
        else:
            rollout.resume()
        for host, build in rollout.step(hosts, now).items():
            self.state.hosts.set_target(host, project, build)
        self.state.deployments.save_rollout(dep_id, self.dc, rollout.to_dict())
        outcomes = self.state.deployments.dc_outcomes(dep_id)
        if rollout.phase == DcPhase.DONE and outcomes.get(self.dc) != DcPhase.DONE:
            self.state.deployments.set_dc_current(project, self.dc, rollout.build_id)
            outcomes = self.state.deployments.mark_dc(dep_id, self.dc, DcPhase.DONE)
            every_dc = [dc for dcs in self.dcs_by_region.values() for dc in dcs]
            if all(outcomes.get(dc) == DcPhase.DONE for dc in every_dc):
                self.state.deployments.set_status(dep_id, DeploymentStatus.COMPLETED, (DeploymentStatus.IN_PROGRESS,))
        elif rollout.phase == DcPhase.ROLLED_BACK and outcomes.get(self.dc) != DcPhase.ROLLED_BACK:
            if rollout.previous_build:
                self.state.deployments.set_dc_current(project, self.dc, rollout.previous_build)
            self.state.deployments.mark_dc(dep_id, self.dc, DcPhase.ROLLED_BACK)
            self.state.deployments.set_status(dep_id, DeploymentStatus.ROLLED_BACK, DEPLOYMENT_ACTIVE, f"{self.dc}: {rollout.reason}")
        return rollout.phase not in (DcPhase.DONE, DcPhase.ROLLED_BACK)
