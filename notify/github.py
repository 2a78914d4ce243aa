"""What GitHub learns of a project's builds and deployments, through githubkit: a commit status
`gantry/build` for each build, and a GitHub Deployment with its statuses for each deployment.
A rate limit or an outage raises `NotDelivered` with when to try again; nothing waits here."""
from __future__ import annotations

from datetime import timedelta
from typing import Callable

import httpx

from gantry.notify.deliver import TIMEOUT_S, NotDelivered
from gantry.statuses import BuildStatus

COMMIT_STATE = {"build.queued": "pending", "build.succeeded": "success", "build.failed": "failure",
                "build.cancelled": "error"}
DEPLOYMENT_STATE = {"deployment.queued": "queued", "deployment.started": "in_progress",
                    "deployment.resumed": "in_progress", "deployment.waiting_approval": "pending",
                    "deployment.paused": "pending", "deployment.completed": "success",
                    "deployment.rolled_back": "failure", "deployment.aborted": "error",
                    "deployment.superseded": "inactive"}
CONTEXT = "gantry/build"


def relevant(name: str) -> bool:
    return name in COMMIT_STATE or name in DEPLOYMENT_STATE


def short(text: str) -> str:
    """GitHub takes at most 140 characters of description."""
    return text if len(text) <= 140 else text[:139] + "…"


class GitHubReporter:
    """`recall(depID)`/`remember(depID, githubID)`: the GitHub Deployment made for a deployment."""

    def __init__(self, cfg: dict, page_url: Callable[[str, str, str], str], recall: Callable[[str], int | None],
                 remember: Callable[[str, int], None]):
        from githubkit import GitHub   # the control plane's (the stack extra)
        self.gh = GitHub(cfg["token"], base_url=cfg["apiURL"], auto_retry=False, timeout=TIMEOUT_S, http_cache=False,
                         user_agent="gantry")
        self.owner, self.repo = cfg["repo"].split("/", 1)
        self.environment, self.page_url, self.recall, self.remember = cfg["environment"], page_url, recall, remember

    def send(self, name: str, event: dict, record: dict, build: dict) -> None:
        """Tell GitHub of event `name` about `record` (a build, or a deployment with its `build`)."""
        try:
            if name in COMMIT_STATE:
                self._commit_status(name, record)
            elif name in DEPLOYMENT_STATE:
                self._deployment(name, event, record, build)
        except NotDelivered:
            raise
        except Exception as e:
            raise _why(e) from None

    def _commit_status(self, name: str, build: dict) -> None:
        state = COMMIT_STATE[name]
        if build.get("buildStatus") == BuildStatus.DEAD:
            state = "error"
        text = {"pending": "queued", "success": "built and replicated to every region",
                "failure": f"failed: {build.get('error') or 'see the log'}", "error": build.get("error") or "cancelled"}[state]
        self.gh.rest.repos.create_commit_status(
            self.owner, self.repo, build["commitSHA"], state=state, context=CONTEXT, description=short(text),
            target_url=self.page_url(build["projectName"], "b", build["buildID"]))

    def _deployment(self, name: str, event: dict, dep: dict, build: dict) -> None:
        gh_id = self.recall(dep["deploymentID"])
        if gh_id is None:
            if name not in ("deployment.queued", "deployment.started"):
                return   # made before GitHub reporting was set up: nothing on GitHub to update
            made = self.gh.rest.repos.create_deployment(
                self.owner, self.repo, ref=build["commitSHA"], environment=self.environment, auto_merge=False,
                required_contexts=[], task="deploy", production_environment=True,
                description=short(f"gantry deployment {dep['deploymentID'][:12]} of build {dep['buildID'][:12]}"),
                payload={"gantryDeployment": dep["deploymentID"], "gantryBuild": dep["buildID"]})
            gh_id = made.parsed_data.id
            self.remember(dep["deploymentID"], gh_id)
        state = DEPLOYMENT_STATE[name]
        self.gh.rest.repos.create_deployment_status(
            self.owner, self.repo, gh_id, state=state, environment=self.environment,
            description=short(dep.get("reason") or name.split(".")[1].replace("_", " ")),
            log_url=self.page_url(dep["projectName"], "d", dep["deploymentID"]), auto_inactive=True)


def _why(e: Exception) -> NotDelivered:
    from githubkit.exception import RateLimitExceeded, RequestFailed
    if isinstance(e, RateLimitExceeded):
        return NotDelivered(f"GitHub rate limit ({type(e).__name__}); again in {e.retry_after}",
                            retry_after_s=e.retry_after / timedelta(seconds=1))
    if isinstance(e, RequestFailed):
        code = e.response.status_code
        return NotDelivered(f"GitHub answered {code}: {e.response.text[:200]}",
                            permanent=400 <= code < 500 and code not in (403, 408, 429))
    if isinstance(e, httpx.HTTPError):
        return NotDelivered(f"GitHub unreachable: {type(e).__name__}: {e}")
    return NotDelivered(f"{type(e).__name__}: {e}")
