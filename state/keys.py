"""The Redis schema: every key gantry uses, its type and what it holds. Nothing outside this
module spells a key, and every Lua script is handed its keys in KEYS (see `scripts`).

| key                          | type   | holds                                                           |
| ---------------------------- | ------ | --------------------------------------------------------------- |
| project:{name}               | hash   | name, repoURL, createdAt, webhookSecret, defaultBranch, coalesce, ratePerS, rateBurst, prestage, buildSettings, deploySettings, egressAllow (JSON) |
| projects                     | set    | project names                                                   |
| prestaged                    | set    | projects whose builds are staged on their hosts once they SUCCEED |
| build:{id}                   | hash   | the build record (buildStatus, leaseOwner, artifact*, pinned, expiredAt, expiredReason, ...) |
| builds:{project}             | zset   | score 0, member "<createdAt ms>:<buildID>" (lexical = time)     |
| queue                        | zset   | buildID -> queue score (priority, then arrival)                 |
| delayed                      | zset   | buildID -> ms when a retried build may run again                |
| building                     | set    | buildIDs in BUILDING                                            |
| seq                          | string | arrival counter for the queue                                   |
| statuscount                  | hash   | build status -> how many builds are in it                       |
| log:{id}                     | string | the build's log, capped                                         |
| repl:{id}                    | set    | regions the build replicates to (the primary included)          |
| repl:{id}:{region}           | hash   | one region's replication row: replicationStatus, bytes/chunks, retries, error |
| replq:{region}               | zset   | buildID -> ms when that region's replication job may run        |
| archived:{project}           | hash   | buildID -> the Parquet file that holds it                       |
| archivedNewest               | hash   | project -> listing key of its newest archived build             |
| delivery:{project}:{id}      | string | buildID a webhook delivery created (expires after 7 days)       |
| push:{project}:{sha}:{sha256}| string | the same, by pushed commit and body digest                      |
| deploy:{id}                  | hash   | deploymentID, projectName, buildID, previousBuildID, strategy, status, reason, regions, createdAt, updatedAt, createdBy |
| deploys:{project}            | zset   | deploymentID by createdAt                                       |
| desired:{project}            | hash   | buildID, deploymentID, version (+1 on every change)             |
| deployed                     | set    | projects that have a desired state                              |
| dcdone:{id}                  | hash   | dc -> its outcome (DONE, ROLLED_BACK, UNTOUCHED)                |
| dcstaged:{id}                | hash   | dc -> ms when every live host there had staged the build (or failed to) |
| dcstaging:{id}               | hash   | dc -> ms when the datacenter began staging the build (its staging deadline runs from it) |
| current:{project}            | hash   | dc -> the buildID the datacenter runs                           |
| rollout:{id}:{dc}            | string | the datacenter's rollout (DcRollout) as JSON                    |
| host:{dc}:{hostID}           | hash   | the host itself: hostID, region, dc, address, serves (JSON list of projects, or "*"), updatedAt, lost ("1"), lastDownload, lastActivation |
| hosts:{dc}                   | set    | host IDs                                                        |
| hostp:{dc}:{hostID}:{project} | hash   | the host for one project: targetBuildID (to run), stageBuildID (to unpack beside it), activeBuildID, state, error, ackedTargetBuildID (the build its last report was about), sentTargetBuildID (the target the answer gave), updatedAt |
| hostprojects:{dc}:{hostID}   | set    | the projects the host has a hostp record for                    |
| audit                        | zset   | score 0, member "<at ms>:<auditID>", every entry                |
| audit:project:{name}         | zset   | the same, one project's entries                             |
| audit:entries                | hash   | auditID -> the entry as JSON                                    |
| audit:seq                    | string | counter that orders entries of the same millisecond            |
| rate:{scope}                 | hash   | a token bucket: tokens, at (expires when full)                  |
| cache:{project}              | hash   | branch -> its build cache as JSON: {paths: {path: manifest digest}, buildID, savedAt, usedAt, bytes} |
| gc:writers                   | zset   | writers that may reuse stored chunks (publishes, cache saves) -> lease expiry ms (Redis time) |
| gc:sweep                     | string | the sweeper's token while it deletes (expires by itself)       |
| gc:last                      | string | the last garbage-collection pass's report, JSON                 |
| events                       | stream | kind (build, deployment), id, project, status, from: each status change, as it is made |
| notice:{id}                  | hash   | one notification to one destination: project, dest, event, payload, status (pending, delivered, failed), attempts, nextAt, error (expires after 7 days) |
| notices:{project}            | zset   | notice IDs by createdAt (the newest 1000)                       |
| noticeq:{project}/{sub}      | list   | a destination's notices in order; the head is the next to deliver |
| noticeqs                     | set    | destinations whose queue holds something                        |
| ghdeploy:{id}                | string | the GitHub Deployment's ID made for a deployment               |
| autodeployed:{buildID}       | string | the deployment continuous deployment made of the build          |
| approvals:{id}               | hash   | a deployment's approval gate ("wave:2") -> JSON list of {user, at, comment} |

Pub/sub channel `desired` (prefixed like a key): a project's name, each time its desired build changes.
Pub/sub channel `replq:{region}`: a build ID, each time a job is queued in the region for now.
"""
from __future__ import annotations

PREFIX = "gantry:"


def _k(*parts: str) -> str:
    return PREFIX + ":".join(parts)


# projects
def project(name: str) -> str: return _k("project", name)
def projects() -> str: return _k("projects")
def prestaged() -> str: return _k("prestaged")
def build_cache(name: str) -> str: return _k("cache", name)


# retention
def gc_writers() -> str: return _k("gc", "writers")
def gc_sweep() -> str: return _k("gc", "sweep")
def gc_last() -> str: return _k("gc", "last")
def freeze() -> str: return _k("freeze")            # the stack's freeze windows (JSON)


# builds and their queue
def build(build_id: str) -> str: return _k("build", build_id)
def builds(project_name: str) -> str: return _k("builds", project_name)
def queue() -> str: return _k("queue")
def delayed() -> str: return _k("delayed")
def building() -> str: return _k("building")
def seq() -> str: return _k("seq")
def statuscount() -> str: return _k("statuscount")
def log(build_id: str) -> str: return _k("log", build_id)
def delivery(project_name: str, delivery_id: str) -> str: return _k("delivery", project_name, delivery_id)
def push(project_name: str, sha: str, body_sha256: str) -> str: return _k("push", project_name, sha, body_sha256)


# replication
def repl_regions(build_id: str) -> str: return _k("repl", build_id)
def repl_row(build_id: str, region: str) -> str: return _k("repl", build_id, region)
def repl_queue(region: str) -> str: return _k("replq", region)
def repl_sources(build_id: str) -> str: return _k("replsrc", build_id)   # zset "source>region" -> lease end (ms)


# the archive's pointers
def archived(project_name: str) -> str: return _k("archived", project_name)
def archived_newest() -> str: return _k("archivedNewest")


# deployments
def deploy(dep_id: str) -> str: return _k("deploy", dep_id)
def deploys(project_name: str) -> str: return _k("deploys", project_name)
def desired(project_name: str) -> str: return _k("desired", project_name)
def deploy_queue(project_name: str) -> str: return _k("depqueue", project_name)   # deployments waiting their turn
def deployed() -> str: return _k("deployed")
def dc_outcomes(dep_id: str) -> str: return _k("dcdone", dep_id)
def dc_staged(dep_id: str) -> str: return _k("dcstaged", dep_id)
def dc_staging(dep_id: str) -> str: return _k("dcstaging", dep_id)
def dc_current(project_name: str) -> str: return _k("current", project_name)
def rollout(dep_id: str, dc: str) -> str: return _k("rollout", dep_id, dc)
def analysis(dep_id: str) -> str: return _k("analysis", dep_id)            # "<dc>/<wave>" -> the wave's measurements
def analysis_verdicts(dep_id: str) -> str: return _k("verdict", dep_id)    # "<dc>/<wave>" -> its outcome and why
def approvals(dep_id: str) -> str: return _k("approvals", dep_id)


# notifications (state/notices.py)
def notice(notice_id: str) -> str: return _k("notice", notice_id)
def notices(project_name: str) -> str: return _k("notices", project_name)
def notice_queue(dest: str) -> str: return _k("noticeq", dest)
def notice_queues() -> str: return _k("noticeqs")
def github_deployment(dep_id: str) -> str: return _k("ghdeploy", dep_id)
def autodeployed(build_id: str) -> str: return _k("autodeployed", build_id)
def events() -> str: return _k("events")   # stream: every status change of a build or deployment (scripts/events.lua)
def desired_channel() -> str: return _k("desired")
def repl_channel(region: str) -> str: return _k("replq", region)


# hosts
# a host ID is its datacenter's: one of the same name in another datacenter is another host
def host(dc: str, host_id: str) -> str: return _k("host", dc, host_id)
def hosts(dc: str) -> str: return _k("hosts", dc)
def host_project(dc: str, host_id: str, project_name: str) -> str: return _k("hostp", dc, host_id, project_name)
def host_projects(dc: str, host_id: str) -> str: return _k("hostprojects", dc, host_id)
# every write to a host's records bumps its datacenter's sequence and scores the host with it
# (state/host_cache.py reads only the hosts scored above what it last saw)
def host_seq(dc: str) -> str: return _k("hostseq", dc)
def host_changed(dc: str) -> str: return _k("hostchanged", dc)


# audit and rate limits
def audit() -> str: return _k("audit")
def audit_project(project_name: str) -> str: return _k("audit", "project", project_name)
def audit_entries() -> str: return _k("audit", "entries")
def audit_seq() -> str: return _k("audit", "seq")
def rate(scope: str) -> str: return _k("rate", scope)
