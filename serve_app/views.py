"""What the API shows: records in Redis turned into the public shapes of `gantry.models`."""
from __future__ import annotations

import json

from gantry.retention import RetentionIn
from gantry.clock import iso_ms
from gantry.redact import redact
from gantry.notify import subscriptions
from gantry.rollout import approvals
from gantry.settings import Settings
from gantry.state import State
from gantry.statuses import DEPLOYMENT_ACTIVE, DEPLOYMENT_TERMINAL, Concurrency, DcPhase, DeploymentStatus, HostState, ReplicationStatus
from gantry.topology import StackConfig

COUNTED = (HostState.DOWNLOADING, HostState.STAGED, HostState.ACTIVE, HostState.FAILED, HostState.LOST)


def public_replication(row: dict[str, str]) -> dict:
    return {"region": row["region"], "replicationStatus": row["replicationStatus"],
            "bytesTransferred": int(row.get("bytesTransferred") or 0),
            "bytesSkipped": int(row.get("bytesSkipped") or 0),
            "chunksTransferred": int(row.get("chunksTransferred") or 0),
            "chunksSkipped": int(row.get("chunksSkipped") or 0),
            "retries": int(row.get("retries") or 0),
            "error": row.get("error") or None,
            "updatedAt": iso_ms(int(row["updatedAt"])) if row.get("updatedAt") else None,
            "source": row.get("source") or None}


def public_record(h: dict[str, str], replication: list[dict] | None = None) -> dict:
    """A build's Redis hash (and its replication rows) as the API shows it."""
    def num(key):
        v = h.get(key)
        return int(v) if v not in (None, "") else None

    def secs(key):
        v = h.get(key)
        return float(v) if v not in (None, "") else None

    artifact = None
    if h.get("artifactDigest"):
        artifact = {"digest": h["artifactDigest"], "size": num("artifactSize"), "chunks": num("artifactChunks")}
    return {
        "buildID": h["buildID"],
        "projectName": h["projectName"],
        "commitSHA": h["commitSHA"],
        "buildStatus": h["buildStatus"],
        "buildDetails": json.loads(h.get("buildDetails") or "{}"),
        "priority": num("priority"),
        "createdAt": iso_ms(num("createdAt")),
        "startedAt": iso_ms(num("startedAt")),
        "finishedAt": iso_ms(num("finishedAt")),
        "lastHeartbeat": iso_ms(num("lastHeartbeat")),
        "retries": num("retries") or 0,
        "error": h.get("error") or None,
        "exitCode": num("exitCode"),
        "logTail": h.get("logTail") or None,
        "supersededBy": h.get("supersededBy") or None,
        "artifact": artifact,
        "replication": [public_replication(r) for r in replication or []],
        "configSource": h.get("configSource") or None,
        "fetchSeconds": secs("fetchSeconds"),
        "buildSeconds": secs("buildSeconds"),
        "cache": json.loads(h["cache"]) if h.get("cache") else None,
        "resources": json.loads(h["resources"]) if h.get("resources") else None,
        "pinned": h.get("pinned") == "1",
        "expiredAt": iso_ms(num("expiredAt")),
        "expiredReason": h.get("expiredReason") or None,
    }


def build_summary(s: dict) -> dict:
    """A listing's row (state.builds.summary_of) as the API shows it."""
    return {**s, "createdAt": iso_ms(int(s["createdAt"]))}


def host_counts(hosts: list[dict], build_id: str) -> dict:
    """Where the hosts are for one build: downloading, staged, active or failed count only for
    this build (a lost host always counts); anything else (idle, busy with another build) is
    pending. A host's state is about the build its report names (ackedTargetBuildID); a host
    that staged another build still runs, and counts active for, the one it runs."""
    c = {"total": len(hosts), "pending": 0, **{s.value: 0 for s in COUNTED}}
    for h in hosts:
        state = h.get("state")
        if state == HostState.STAGED and h.get("activeBuildID") == build_id:
            state = HostState.ACTIVE
        about = h.get("ackedTargetBuildID") or h.get("targetBuildID")
        mine = (h.get("activeBuildID") if state == HostState.ACTIVE else about) == build_id
        if state == HostState.LOST or (state in COUNTED and mine):
            c[state] += 1
        else:
            c["pending"] += 1
    return c


def public_project(name: str, p: dict, settings: Settings) -> dict:
    rate = float(p.get("ratePerS") or settings.rate_project_per_s)
    burst = int(float(p.get("rateBurst") or settings.rate_project_burst))
    return {"projectName": name, "repoURL": redact(p["repoURL"]), "createdAt": iso_ms(int(p["createdAt"])),
            "defaultBranch": p.get("defaultBranch") or "main", "coalesce": p.get("coalesce") == "1",
            "webhookConfigured": bool(p.get("webhookSecret")), "webhookPath": f"/webhooks/github/{name}",
            "rateLimit": {"perSecond": rate, "burst": burst}, "prestage": p.get("prestage") == "1",
            "build": json.loads(p.get("buildSettings") or "{}"),
            "deploy": {**json.loads(p.get("deploySettings") or "{}"),
                       **({"metricsPort": int(p["metricsPort"])} if p.get("metricsPort") else {}),
                       "concurrency": p.get("concurrency") or Concurrency.QUEUE.value, "auto": p.get("autoDeploy") == "1",
                       "duringFreeze": p.get("duringFreeze") or "refuse",
                       **({"strategy": json.loads(p["defaultStrategy"])} if p.get("defaultStrategy") else {})},
            "egressAllow": json.loads(p.get("egressAllow") or "[]"),
            "retention": RetentionIn.model_validate(json.loads(p.get("retention") or "{}")).model_dump(),
            "analysis": json.loads(p.get("analysis") or "null"), "prometheusURL": p.get("prometheusURL") or None,
            "freeze": json.loads(p.get("freeze") or "[]"),
            "notifications": [subscriptions.public(s) for s in json.loads(p.get("notifications") or "[]")],
            "github": _github(p)}


def _github(p: dict) -> dict | None:
    """A project's GitHub reporting without its token."""
    cfg = json.loads(p.get("github") or "null")
    return {k: v for k, v in cfg.items() if k != "token"} | {"tokenConfigured": True} if cfg else None


def deployment_summary(dep: dict) -> dict:
    return {"deploymentID": dep["deploymentID"], "buildID": dep["buildID"], "status": dep["status"],
            "reason": dep.get("reason") or None, "createdAt": iso_ms(int(dep["createdAt"])),
            "updatedAt": iso_ms(int(dep["updatedAt"])), "createdBy": dep.get("createdBy", "")}


def deployment_view(state: State, stack: StackConfig, dep: dict) -> dict:
    """A deployment with its progress in every region and datacenter."""
    regions, everyone, current = [], [], None
    outcomes = state.deployments.dc_outcomes(dep["deploymentID"])
    running = state.deployments.dc_current(dep["projectName"])
    replicas = {row["region"]: row for row in state.replication.rows(dep["buildID"])}
    made_for = set(json.loads(dep.get("regions") or "[]"))   # a region that joined later is not in it
    for region in (r for r in stack.regions if r.name in made_for or not made_for):
        dcs, in_region = [], []
        row = replicas.get(region.name) or {}
        waiting = None
        if dep["status"] in DEPLOYMENT_ACTIVE and row.get("replicationStatus", ReplicationStatus.REPLICATED) != ReplicationStatus.REPLICATED:
            waiting = (f"waiting for the build's replica in {region.name} ({row['replicationStatus']}"
                       + (f": {row['error']}" if row.get("error") else "") + ")")
        for dc in region.datacenters:
            hosts = state.hosts.for_project(dc, dep["projectName"])
            in_region += hosts
            r = state.deployments.load_rollout(dep["deploymentID"], dc)
            dcs.append({"dc": dc, "currentBuildID": running.get(dc),
                        "phase": r["phase"] if r else (DcPhase.WAITING_FOR_REPLICA if waiting else None),
                        "waiting": None if r else waiting, "wave": r["wave"] + 1 if r else None,
                        "waves": len(r["waves"]) if r else None, "hosts": host_counts(hosts, dep["buildID"])})
            if r and current is None and outcomes.get(dc) != DcPhase.DONE:
                current = region.name
        everyone += in_region
        regions.append({"region": region.name, "dcs": dcs, "hosts": host_counts(in_region, dep["buildID"])})
    return {**deployment_summary(dep), "projectName": dep["projectName"],
            "previousBuildID": dep.get("previousBuildID") or None, "strategy": json.loads(dep["strategy"]),
            "currentRegion": current if dep["status"] in DEPLOYMENT_ACTIVE else None,
            "regions": regions, "hosts": host_counts(everyone, dep["buildID"]),
            "prediction": json.loads(dep["prediction"]) if dep.get("prediction") else None,
            "queue": queue_place(state, dep) if dep["status"] == DeploymentStatus.QUEUED else None,
            "approval": approval_view(state, dep) if dep["status"] == DeploymentStatus.WAITING_APPROVAL else None}


def approval_view(state: State, dep: dict) -> dict:
    """Where a waiting deployment waits, who may approve, and who has."""
    gate_name, gate = approvals.awaited(dep)
    gate = gate or {"count": 1, "role": "deployer"}
    return {"gate": gate_name, "mayApprove": approvals.describe(gate), "needed": gate["count"],
            "approvals": state.approvals.given(dep["deploymentID"]).get(gate_name, [])}


def queue_place(state: State, dep: dict) -> dict:
    """A queued deployment's place: the ones ahead of it, and when it should start by the
    simulator's predictions (what the one under way has left, and each queued one ahead whole)."""
    ahead = []
    for dep_id in state.deployments.queue(dep["projectName"]):
        if dep_id == dep["deploymentID"]:
            break
        ahead.append(dep_id)
    under_way = state.deployments.desired(dep["projectName"]).get("deploymentID")
    now_ms, eta = state.clock(), 0.0
    for dep_id in [under_way, *ahead]:
        d = state.deployments.get(dep_id or "") or {}
        p = json.loads(d.get("prediction") or "null")
        if d.get("status") in DEPLOYMENT_TERMINAL or (dep_id == under_way and d.get("status") not in DEPLOYMENT_ACTIVE):
            continue
        if not p or p.get("predictedSeconds") is None:
            eta = None
            break
        started = int(d.get("startedAt") or d.get("createdAt") or now_ms) if dep_id == under_way else now_ms
        eta += max(0.0, p["predictedSeconds"] - (now_ms - started) / 1000)
    return {"position": len(ahead) + 1, "ahead": ahead, "underWay": under_way or None,
            "etaSeconds": round(eta, 1) if eta is not None else None}


def project_hosts(state: State, stack: StackConfig, project: str) -> list[dict]:
    """The hosts that serve the project, each with its state for this project."""
    return [{"hostID": h["hostID"], "region": h["region"], "dc": h["dc"], "address": h.get("address") or None,
             "activeBuildID": h.get("activeBuildID") or None, "state": h["state"], "error": h.get("error") or None,
             "updatedAt": iso_ms(int(h["updatedAt"])) if h.get("updatedAt") else None}
            for r in stack.regions for dc in r.datacenters for h in state.hosts.for_project(dc, project)]
