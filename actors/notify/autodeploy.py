"""Continuous deployment: each build of a project's default branch that SUCCEEDS deploys itself
(`deploy.auto`), through the API as user `gantry-cd`, so it meets what a person's deployment
meets: the project's default strategy and approvals, its queue, and freeze windows (it waits for
one to end rather than being refused). It reads the events stream in a consumer group of its own;
an event it could not act on (the API restarting) is read again."""
from __future__ import annotations

import json
import logging
from typing import Callable

from gantry.state import State, keys
from gantry.statuses import BuildStatus

log = logging.getLogger("gantry.autodeploy")
GROUP, USER = "autodeploy", "gantry-cd"
MAX_ATTEMPTS = 20


class AutoDeployer:
    def __init__(self, state: State, deploy: Callable[[str, str], dict]):
        """`deploy(project, buildID)`: ask the API for a deployment; returns what it accepted."""
        self.state, self.deploy = state, deploy
        state.events.join(GROUP)

    def tick(self) -> None:
        for event_id, event in self.state.events.read(GROUP, "deployer", count=50):
            try:
                self.handle(event)
            except Exception:
                if self.state.events.attempts(GROUP, event_id) < MAX_ATTEMPTS:
                    log.exception("continuous deployment of %s: will try again", event.get("id"))
                    continue
                log.exception("continuous deployment of %s given up after %d attempts", event.get("id"), MAX_ATTEMPTS)
            self.state.events.ack(GROUP, [event_id])

    def handle(self, event: dict) -> str | None:
        """Deploy the build the event tells of, if it is due; the deployment's ID if one was made."""
        if event.get("kind") != "build" or event.get("status") != BuildStatus.SUCCEEDED:
            return None
        project = self.state.projects.get(event["project"]) or {}
        build = self.state.builds.get(event["id"]) or {}
        branch = json.loads(build.get("buildDetails") or "{}").get("branch")
        if project.get("autoDeploy") != "1" or branch != (project.get("defaultBranch") or "main"):
            return None
        marker = keys.autodeployed(event["id"])
        if not self.state.r.set(marker, "", nx=True, ex=30 * 24 * 3600):   # this is a redelivery
            if self.state.r.get(marker) or self._made(event["project"], event["id"]):
                return None   # deployed already (or it died between the deployment and the marker)
        accepted = self.deploy(event["project"], event["id"])
        self.state.r.set(marker, accepted["deploymentID"], ex=30 * 24 * 3600)
        log.info("continuous deployment: build %s of %s -> deployment %s (%s)", event["id"], event["project"],
                 accepted["deploymentID"], accepted["status"])
        return accepted["deploymentID"]

    def _made(self, project: str, build_id: str) -> bool:
        deps, _ = self.state.deployments.page(project, 20, None)
        return any(d.get("buildID") == build_id and d.get("createdBy") == USER for d in deps)
