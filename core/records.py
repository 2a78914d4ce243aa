"""Typed records of what Redis holds, for the code that decides things (the rollout's reconcile,
the coordinator, the simulator). Each knows its hash's field names; nothing else spells them.
The API's response models are in `gantry.models`."""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from gantry.statuses import BuildStatus, DeploymentStatus, HostState, ReplicationStatus


@dataclass
class Deployment:
    deployment_id: str
    project: str
    build_id: str
    previous_build: str | None
    status: DeploymentStatus
    strategy: dict = field(default_factory=dict)
    regions: list[str] = field(default_factory=list)
    reason: str = ""
    analysis: dict | None = None     # its canary analysis (rollout.analysis.AnalysisIn), if any
    awaiting: str = ""               # WAITING_APPROVAL: the approval gate it waits at

    @classmethod
    def from_hash(cls, h: dict) -> "Deployment":
        return cls(h["deploymentID"], h["projectName"], h["buildID"], h.get("previousBuildID") or None,
                   DeploymentStatus(h["status"]), json.loads(h.get("strategy") or "{}"),
                   json.loads(h.get("regions") or "[]"), h.get("reason") or "",
                   json.loads(h.get("analysis") or "null"), h.get("awaiting") or "")

    @property
    def stage_all(self) -> bool:
        return self.strategy.get("stage") == "all"


@dataclass
class ReplicationRow:
    region: str
    status: ReplicationStatus
    retries: int = 0
    error: str = ""

    @classmethod
    def from_hash(cls, h: dict) -> "ReplicationRow":
        return cls(h["region"], ReplicationStatus(h["replicationStatus"]), int(h.get("retries") or 0),
                   h.get("error") or "")


@dataclass
class BuildRecord:
    """What deciding about a build needs (the API's full view is `models.Build`)."""
    build_id: str
    project: str
    status: BuildStatus
    error: str = ""
    artifact_digest: str | None = None
    artifact_size: int = 0
    deploy_start: str = ""
    deploy_health: str = ""
    created_at: int = 0

    @classmethod
    def from_hash(cls, h: dict) -> "BuildRecord":
        return cls(h["buildID"], h.get("projectName") or "", BuildStatus(h["buildStatus"]), h.get("error") or "",
                   h.get("artifactDigest") or None, int(h.get("artifactSize") or 0), h.get("deployStart") or "",
                   h.get("deployHealth") or "", int(h.get("createdAt") or 0))


@dataclass
class HostView:
    """One host as a rollout of one project sees it: what it runs and reports, and what it was told."""
    host_id: str
    active_build: str | None   # what runs there now
    state: str                 # a HostState
    target_build: str | None   # what it was told to run
    acked_target: str | None = None   # what it had been told when it last reported
    sent_target: str | None = None    # what the answer to that report told it
    stage_build: str | None = None    # what it was told to stage
    stage_late: str | None = None     # a build it did not stage in time

    @classmethod
    def from_hash(cls, h: dict) -> "HostView":
        """From `state.hosts.for_project`'s merge of the host's record and its record for the project."""
        return cls(h["hostID"], h.get("activeBuildID") or None, h["state"], h.get("targetBuildID") or None,
                   h.get("ackedTargetBuildID") or None, h.get("sentTargetBuildID") or None,
                   h.get("stageBuildID") or None, h.get("stageLate") or None)

    def state_for(self, build: str) -> str:
        """Its state for a rollout of `build`: FAILED while it has not staged a build it was late
        to stage (once it runs it, it counts as it reports)."""
        if self.stage_late == build and self.state not in (HostState.ACTIVE, HostState.STAGED, HostState.LOST):
            return HostState.FAILED
        return self.state

    def settled_on(self, build: str) -> bool:
        """Its last report is about `build`: made after it was told `build`, and answered with
        `build` again. (An older report can show the old build active while the host is about
        to move.)"""
        return self.acked_target == build and self.sent_target == build

    def runs(self, build: str) -> bool:
        return self.state == HostState.ACTIVE and self.active_build == build and self.settled_on(build)

    def failed_on(self, build: str) -> bool:
        return self.state == HostState.LOST or (self.state_for(build) == HostState.FAILED and self.settled_on(build))

    @property
    def lost(self) -> bool:
        return self.state == HostState.LOST
