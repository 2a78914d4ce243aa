"""The gantry Python SDK: one typed surface, two ways in.

    from gantry.client import HttpClient, InClusterClient
    c = HttpClient("https://127.0.0.1:8000", token, ca)   # from anywhere, over HTTPS (ca: the stack's CA file)
    c = InClusterClient(token)                               # from a Ray driver or actor in the cluster
    b = c.build("shop", sha); c.wait_build("shop", b.buildID)

The in-cluster client calls the API deployment's replicas through their Serve handle (`invoke`),
skipping HTTP but not authentication, rate limits or the audit log. Both return the API's
pydantic models and raise `GantryError` with the API's status, error and detail.
"""
from __future__ import annotations

import time
from abc import ABC, abstractmethod
from typing import Any, Callable, Iterator

import httpx

from gantry.tls import verify
from gantry.admin_models import ArchiveResult, AuditPage, GcReport
from gantry.models import (Build, BuildAccepted, BuildLog, BuildPage, BuildSummary, Deployment,
                           DeploymentAccepted, DeploymentPage, Host, NoticeList, Prediction, Project)
from gantry.statuses import BUILD_TERMINAL, DEPLOYMENT_TERMINAL, DeploymentOp

TERMINAL_BUILD = BUILD_TERMINAL
TERMINAL_DEPLOYMENT = DEPLOYMENT_TERMINAL

# op -> (HTTP method, path template); other keyword arguments become the query string, `body` the JSON body
ROUTES = {
    "list_projects": ("GET", "/projects"),
    "get_project": ("GET", "/projects/{projectName}"),
    "put_project": ("PUT", "/projects/{projectName}"),
    "create_build": ("POST", "/projects/{projectName}/builds"),
    "list_builds": ("GET", "/projects/{projectName}/builds"),
    "get_build": ("GET", "/projects/{projectName}/builds/{buildID}"),
    "get_logs": ("GET", "/projects/{projectName}/builds/{buildID}/logs"),
    "cancel_build": ("PATCH", "/projects/{projectName}/builds/{buildID}?op=CANCEL"),
    "retry_replication": ("POST", "/projects/{projectName}/builds/{buildID}/replication?op=RETRY"),
    "create_deployment": ("POST", "/projects/{projectName}/deployments"),
    "list_deployments": ("GET", "/projects/{projectName}/deployments"),
    "get_deployment": ("GET", "/projects/{projectName}/deployments/{deploymentID}"),
    "deployment_op": ("POST", "/projects/{projectName}/deployments/{deploymentID}"),
    "list_hosts": ("GET", "/projects/{projectName}/hosts"),
    "rollback": ("POST", "/projects/{projectName}/rollback"),
    "approve_deployment": ("POST", "/projects/{projectName}/deployments/{deploymentID}/approve"),
    "list_notifications": ("GET", "/projects/{projectName}/notifications"),
    "audit": ("GET", "/audit"),
    "archive": ("POST", "/admin/archive"),
    "pin_build": ("PUT", "/projects/{projectName}/builds/{buildID}/pin"),
    "unpin_build": ("DELETE", "/projects/{projectName}/builds/{buildID}/pin"),
    "gc": ("POST", "/admin/gc"),
    "gc_report": ("GET", "/admin/gc"),
    "get_analysis": ("GET", "/projects/{projectName}/deployments/{deploymentID}/analysis"),
    "analysis_check": ("POST", "/projects/{projectName}/analysis/check"),
    "get_freeze": ("GET", "/admin/freeze"),
    "put_freeze": ("PUT", "/admin/freeze"),
}


class GantryError(Exception):
    def __init__(self, status: int, error: str, detail: Any = None, retry_after_s: float | None = None):
        self.status, self.error, self.detail, self.retry_after_s = status, error, detail, retry_after_s
        super().__init__(f"{status} {error}" + (f": {detail}" if detail not in (None, "") else ""))


def _wait(get: Callable[[], Any], status_of: Callable[[Any], str], terminal: tuple[str, ...], what: str,
          timeout_s: float, poll_s: float, on_update: Callable[[Any], None] | None) -> Any:
    """Poll until the thing reaches a terminal status; TimeoutError past timeout_s."""
    deadline = time.monotonic() + timeout_s
    while True:
        x = get()
        if on_update:
            on_update(x)
        if status_of(x) in terminal:
            return x
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} is still {status_of(x)} after {timeout_s:.0f}s")
        time.sleep(poll_s)


class _Client(ABC):
    """The operations; subclasses supply `_call(op name, **kwargs) -> JSON value`."""

    @abstractmethod
    def _call(self, name: str, /, **kw) -> Any: ...

    # projects
    def projects(self) -> list[Project]:
        return [Project.model_validate(p) for p in self._call("list_projects")]

    def project(self, name: str) -> Project:
        return Project.model_validate(self._call("get_project", projectName=name))

    def register(self, name: str, repo_url: str, *, webhook_secret: str | None = None,
                 default_branch: str | None = None, coalesce: bool | None = None,
                 rate_limit: tuple[float, int] | None = None, prestage: bool | None = None,
                 build: dict | None = None, deploy: dict | None = None, egress_allow: list[str] | None = None,
                 retention: dict | None = None, notifications: list[dict] | None = None,
                 github: dict | None = None) -> Project:
        """Register or update a project. `build`, `deploy` and `egress_allow`, when given, replace
        the project's build settings (used where a commit has no gantry.toml); `retention` its
        retention policy (fields left out take their defaults); `notifications` its subscriptions;
        `github` its GitHub reporting ({}: none)."""
        body = {"repoURL": repo_url, "webhookSecret": webhook_secret, "defaultBranch": default_branch,
                "coalesce": coalesce, "prestage": prestage, "build": build, "deploy": deploy, "egressAllow": egress_allow,
                "retention": retention, "notifications": notifications, "github": github,
                "rateLimit": {"perSecond": rate_limit[0], "burst": rate_limit[1]} if rate_limit else None}
        out = self._call("put_project", projectName=name, body={k: v for k, v in body.items() if v is not None})
        return Project.model_validate(out.get("project", out))  # in-cluster answers {created, project}

    # builds
    def build(self, project: str, commit_sha: str, *, env: dict[str, str] | None = None,
              priority: int | None = None) -> BuildAccepted:
        body: dict = {"commitSHA": commit_sha}
        if env:
            body["buildDetails"] = {"env": env}
        if priority is not None:
            body["priority"] = priority
        return BuildAccepted.model_validate(self._call("create_build", projectName=project, body=body))

    def builds(self, project: str, limit: int = 20, cursor: str | None = None) -> BuildPage:
        return BuildPage.model_validate(self._call("list_builds", projectName=project, limit=limit, nextCursor=cursor))

    def iter_builds(self, project: str, page_size: int = 100) -> Iterator[BuildSummary]:
        cursor = None
        while True:
            page = self.builds(project, page_size, cursor)
            yield from page.builds
            if not page.nextCursor:
                return
            cursor = page.nextCursor

    def get_build(self, project: str, build_id: str) -> Build:
        return Build.model_validate(self._call("get_build", projectName=project, buildID=build_id))

    def logs(self, project: str, build_id: str, offset: int = 0) -> BuildLog:
        return BuildLog.model_validate(self._call("get_logs", projectName=project, buildID=build_id, offset=offset))

    def follow_logs(self, project: str, build_id: str, poll_s: float = 1.0) -> Iterator[str]:
        """Yield the log as it grows, until the build is terminal and the log is read to its end."""
        offset = 0
        while True:
            chunk = self.logs(project, build_id, offset)
            if chunk.data:
                yield chunk.data
            offset = chunk.nextOffset
            if chunk.complete:
                return
            if not chunk.data:
                time.sleep(poll_s)

    def cancel(self, project: str, build_id: str) -> Build:
        return Build.model_validate(self._call("cancel_build", projectName=project, buildID=build_id))

    def retry_replication(self, project: str, build_id: str) -> Build:
        """Start again every region whose replication gave up."""
        return Build.model_validate(self._call("retry_replication", projectName=project, buildID=build_id))

    def wait_build(self, project: str, build_id: str, timeout_s: float = 1800, poll_s: float = 1.0,
                   on_update: Callable[[Build], None] | None = None) -> Build:
        return _wait(lambda: self.get_build(project, build_id), lambda b: b.buildStatus, TERMINAL_BUILD,
                     f"build {build_id}", timeout_s, poll_s, on_update)

    # deployments
    def deploy(self, project: str, build_id: str, strategy: dict | None = None,
               override_freeze_reason: str | None = None, wait_for_freeze: bool | None = None) -> DeploymentAccepted:
        """Deploy a build; `override_freeze_reason` (admins and deployers) deploys inside a freeze
        window, saying why; `wait_for_freeze` waits in the queue for it to end (None: as the project says)."""
        body = {"buildID": build_id, **({"strategy": strategy} if strategy else {}),
                **({"overrideFreeze": True, "reason": override_freeze_reason} if override_freeze_reason else {}),
                **({"waitForFreeze": wait_for_freeze} if wait_for_freeze is not None else {})}
        return DeploymentAccepted.model_validate(self._call("create_deployment", projectName=project, body=body))

    def predict(self, project: str, build_id: str, strategy: dict | None = None) -> Prediction:
        """A dry run of `deploy`: how long it would take; creates nothing."""
        body = {"buildID": build_id, **({"strategy": strategy} if strategy else {})}
        return Prediction.model_validate(self._call("create_deployment", projectName=project, body=body, dryRun=True))

    def deployments(self, project: str, limit: int = 20, cursor: str | None = None) -> DeploymentPage:
        return DeploymentPage.model_validate(
            self._call("list_deployments", projectName=project, limit=limit, nextCursor=cursor))

    def deployment(self, project: str, deployment_id: str) -> Deployment:
        return Deployment.model_validate(self._call("get_deployment", projectName=project, deploymentID=deployment_id))

    def _op(self, project: str, deployment_id: str, op: str) -> Deployment:
        return Deployment.model_validate(
            self._call("deployment_op", projectName=project, deploymentID=deployment_id, op=op))

    def pause(self, project: str, deployment_id: str) -> Deployment:
        return self._op(project, deployment_id, DeploymentOp.PAUSE)

    def resume(self, project: str, deployment_id: str) -> Deployment:
        return self._op(project, deployment_id, DeploymentOp.RESUME)

    def abort(self, project: str, deployment_id: str) -> Deployment:
        return self._op(project, deployment_id, DeploymentOp.ABORT)

    def approve(self, project: str, deployment_id: str, comment: str | None = None) -> Deployment:
        """Approve the gate a WAITING_APPROVAL deployment waits at."""
        return Deployment.model_validate(self._call("approve_deployment", projectName=project, deploymentID=deployment_id,
                                                    body={"comment": comment} if comment else {}))

    def notifications(self, project: str, limit: int = 100) -> NoticeList:
        """The project's newest notifications and how each delivery went."""
        return NoticeList.model_validate(self._call("list_notifications", projectName=project, limit=limit))

    def rollback(self, project: str, build_id: str | None = None) -> DeploymentAccepted:
        body = {"buildID": build_id} if build_id else {}
        return DeploymentAccepted.model_validate(self._call("rollback", projectName=project, body=body))

    def wait_deployment(self, project: str, deployment_id: str, timeout_s: float = 1800, poll_s: float = 1.0,
                        on_update: Callable[[Deployment], None] | None = None) -> Deployment:
        return _wait(lambda: self.deployment(project, deployment_id), lambda d: d.status, TERMINAL_DEPLOYMENT,
                     f"deployment {deployment_id}", timeout_s, poll_s, on_update)

    def hosts(self, project: str) -> list[Host]:
        return [Host.model_validate(h) for h in self._call("list_hosts", projectName=project)]

    # admin
    def audit(self, project: str | None = None, limit: int = 20, cursor: str | None = None) -> AuditPage:
        return AuditPage.model_validate(self._call("audit", project=project, limit=limit, nextCursor=cursor))

    def archive(self, older_than_s: float | None = None) -> ArchiveResult:
        return ArchiveResult.model_validate(self._call("archive", olderThanS=older_than_s))

    def pin(self, project: str, build_id: str, pinned: bool = True) -> Build:
        """Pinned, retention keeps the build whatever its policy says; unpinned, the policy decides."""
        return Build.model_validate(self._call("pin_build" if pinned else "unpin_build",
                                               projectName=project, buildID=build_id))

    def gc(self, dry_run: bool = False, grace_s: float | None = None) -> GcReport:
        """A garbage-collection pass now (admin); `dry_run` only reports what would go and why."""
        return GcReport.model_validate(self._call("gc", dryRun=dry_run, graceS=grace_s))

    def gc_report(self) -> GcReport:
        return GcReport.model_validate(self._call("gc_report"))

    # freeze windows (plain dicts: see serve_app/freeze_ops.py)
    def freeze(self) -> dict:
        """The stack-wide deploy freeze windows, and the one open now."""
        return self._call("get_freeze")

    def set_freeze(self, windows: list[dict]) -> dict:
        """Replace the stack-wide windows (admin): each {reason, cron, durationS, timeZone} or {reason, start, end}."""
        return self._call("put_freeze", body={"windows": windows})

    # canary analysis (plain dicts: see serve_app/analysis_ops.py)
    def analysis(self, project: str, deployment_id: str) -> dict:
        """Every wave's analysis: its intervals, measurements, samples and decisions."""
        return self._call("get_analysis", projectName=project, deploymentID=deployment_id)

    def analysis_check(self, project: str, runs: int = 20) -> dict:
        """The project's analysis, A/A on its current fleet: how often it fails a build that changed nothing."""
        return self._call("analysis_check", projectName=project, runs=runs)


class HttpClient(_Client):
    """Over HTTP. A 429 (rate limited) or 503 (the state store unreachable) is retried after its
    Retry-After, up to `max_retries` times."""

    def __init__(self, url: str, token: str, ca_file: str = "", timeout_s: float = 30, max_retries: int = 10):
        """`ca_file`: the CA the API's certificate must be signed by (default: the system's roots)."""
        self.http = httpx.Client(base_url=url.rstrip("/"), timeout=timeout_s, verify=verify(ca_file),
                                 headers={"Authorization": f"Bearer {token}"})
        self.max_retries = max_retries

    def close(self) -> None:
        self.http.close()

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.close()

    def _call(self, name: str, /, **kw) -> Any:
        method, template = ROUTES[name]
        path, _, fixed = template.partition("?")
        path = path.format(**{k: kw.pop(k) for k in list(kw) if "{" + k + "}" in path})
        body = kw.pop("body", None)
        params = {k: v for k, v in kw.items() if v is not None}
        if fixed:
            params.update(dict(p.split("=", 1) for p in fixed.split("&")))
        for attempt in range(self.max_retries + 1):
            r = self.http.request(method, path, params=params, json=body if method != "GET" else None)
            if r.status_code not in (429, 503) or attempt == self.max_retries:
                break
            time.sleep(min(30.0, float(r.headers.get("retry-after", "1"))))
        if r.status_code >= 400:
            try:
                err = r.json()
            except ValueError:
                err = {"error": r.text or r.reason_phrase}
            retry = float(r.headers["retry-after"]) if "retry-after" in r.headers else None
            raise GantryError(r.status_code, err.get("error", ""), err.get("detail"), retry)
        return r.json()


class InClusterClient(_Client):
    """Through the Serve handle of the API deployment; needs a Ray connection to the cluster."""

    def __init__(self, token: str, app_name: str = "gantry", deployment: str = "gantry-api", timeout_s: float = 60):
        from ray import serve
        self.token, self.timeout_s = token, timeout_s
        self.handle = serve.get_deployment_handle(deployment, app_name=app_name)

    def _call(self, name: str, /, **kw) -> Any:
        out = self.handle.invoke.remote(self.token, name, kw).result(timeout_s=self.timeout_s)
        if "error" in out:
            e = out["error"]
            raise GantryError(e["status"], e["error"], e.get("detail"))
        return out["ok"]
