"""The events people subscribe to, named from the status changes the state scripts record
(`state/scripts/events.lua`) and the waves the coordinators finish. Pure."""
from __future__ import annotations

from gantry.statuses import BuildStatus as B, DeploymentStatus as D

BUILD_EVENTS = ("build.queued", "build.succeeded", "build.failed", "build.cancelled")
DEPLOYMENT_EVENTS = ("deployment.queued", "deployment.started", "deployment.wave_done", "deployment.waiting_approval",
                     "deployment.paused", "deployment.resumed", "deployment.rolled_back", "deployment.completed",
                     "deployment.aborted", "deployment.superseded")
EVENTS = BUILD_EVENTS + DEPLOYMENT_EVENTS + ("freeze.override",)

_BUILD = {B.QUEUED: "build.queued", B.SUCCEEDED: "build.succeeded", B.FAILED: "build.failed", B.DEAD: "build.failed",
          B.CANCELLED: "build.cancelled"}
_DEPLOYMENT = {D.QUEUED: "deployment.queued", D.WAITING_APPROVAL: "deployment.waiting_approval",
               D.PAUSED: "deployment.paused", D.ROLLED_BACK: "deployment.rolled_back", D.COMPLETED: "deployment.completed",
               D.ABORTED: "deployment.aborted", D.SUPERSEDED: "deployment.superseded"}


def named(event: dict, record: dict | None) -> list[str]:
    """The events a raw change makes: `event` as the stream holds it (kind, id, project, status,
    from), `record` the build or deployment as it is now (a freeze override is on it)."""
    kind, status, came_from = event.get("kind"), event.get("status", ""), event.get("from", "")
    if kind == "build":
        if status == B.QUEUED and came_from:   # a retry after an infrastructure fault: nothing new to say
            return []
        return [_BUILD[status]] if status in _BUILD else []
    if kind == "wave":
        return ["deployment.wave_done"]
    if kind != "deployment":
        return []
    out = []
    if status == D.IN_PROGRESS:
        out.append("deployment.started" if came_from in ("", D.QUEUED) else "deployment.resumed")
    elif status in _DEPLOYMENT:
        out.append(_DEPLOYMENT[status])
    if not came_from and (record or {}).get("freezeOverride"):
        out.append("freeze.override")
    return out


def describe(name: str, event: dict, record: dict | None) -> str:
    """One line for people: what happened, to what."""
    r = record or {}
    if name.startswith("build."):
        what = f"build {event['id'][:12]} of {event['project']} ({(r.get('commitSHA') or '')[:12]})"
        return f"{what} {name.split('.')[1]}" + (f": {r['error']}" if r.get("error") and name == "build.failed" else "")
    what = f"deployment {event['id'][:12]} of {event['project']} (build {(r.get('buildID') or '')[:12]})"
    if name == "deployment.wave_done":
        return f"{what}: wave {event.get('wave')} done in {event.get('dc')}"
    if name == "freeze.override":
        return f"{what} overrode a freeze window: {r.get('freezeOverride')}"
    reason = r.get("reason") or ""
    return f"{what} {name.split('.')[1].replace('_', ' ')}" + (f": {reason}" if reason else "")
