"""The gantry HTTP API on Ray Serve: thin routes. Each authenticates the caller and calls one
operation of `service.Service`; the host gateway's routes are mixed in from `gateway`. (No
`from __future__ import annotations`: FastAPI must see real types on the Serve class methods.)
"""

import base64
import asyncio
import hashlib
import json
from pathlib import Path

import ray
from fastapi import Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from ray import serve

from gantry.archive.files import ArchiveReader
from gantry.artifacts.blobstore import s3_for
from gantry.rollout.freeze import FreezeWindows
from gantry.constants import ANALYST, HEAD, MONITOR, NAMESPACE, SCHEDULER
from gantry.admin_models import ArchiveResult, AuditPage, GcReport
from gantry.models import (Prediction, Build, BuildAccepted, BuildIn, BuildLog, BuildPage, CancelIn,
                           Deployment, DeploymentAccepted, DeploymentIn, DeploymentPage, Host, Project, ProjectIn,
                           RollbackIn, WebhookResult, ApproveIn, NoticeList)
from gantry import auth
from gantry.serve_app.errors import ApiError
from gantry.serve_app.dc_endpoints import DcEndpoints
from gantry.serve_app.direct_ingress import reuse_address
from gantry.serve_app.http import CACHED, app, cached
from gantry.serve_app.retention_ops import MAX_AGE_S, MAX_GRACE_S
from gantry.serve_app.service import Service
from gantry.settings import Settings
from gantry.state import State
from gantry.statuses import BUILD_TERMINAL, DEPLOYMENT_ACTIVE, BuildStatus, DeploymentOp, DeploymentStatus
from gantry.topology import StackConfig

DASHBOARD = Path(__file__).with_name("dashboard.html")
STATUSES_JS = json.dumps({   # the dashboard's statuses, from the one place that spells them
    "buildTerminal": sorted(BUILD_TERMINAL), "deploymentActive": sorted(DEPLOYMENT_ACTIVE),
    "ops": {op.name: op.value for op in DeploymentOp}, "succeeded": BuildStatus.SUCCEEDED,
    "inProgress": DeploymentStatus.IN_PROGRESS, "paused": DeploymentStatus.PAUSED, "queued": DeploymentStatus.QUEUED,
    "waitingApproval": DeploymentStatus.WAITING_APPROVAL})
WEBHOOK_OPENAPI = {  # the body is read raw (it is what the signature covers), so describe it here
    "parameters": [
        {"name": "X-Hub-Signature-256", "in": "header", "required": True, "schema": {"type": "string"},
         "description": "sha256=<hex HMAC-SHA256 of the body under the project's webhookSecret>"},
        {"name": "X-GitHub-Event", "in": "header", "schema": {"type": "string"}, "description": "push, ping, ..."},
        {"name": "X-GitHub-Delivery", "in": "header", "schema": {"type": "string"},
         "description": "unique per delivery; a redelivery repeats it"}],
    "requestBody": {"required": True, "content": {"application/json": {"schema": {
        "type": "object", "description": "GitHub's push event payload (ref, after, deleted, pusher, ...)"}}}},
}


def _check(probe) -> bool:
    try:
        return bool(probe())
    except Exception:
        return False


# Hosts report every second, so allow far more requests in flight than Serve's default of 5.
@serve.deployment(name="gantry-api", max_ongoing_requests=200, ray_actor_options={"num_cpus": 0.1, "resources": HEAD})
@serve.ingress(app)
class GantryAPI(DcEndpoints):
    def __init__(self, stack_file: str):
        reuse_address()   # before Serve binds the API port for this replica (serve_app/direct_ingress.py)
        self.stack = StackConfig.load(stack_file)
        self.settings = Settings()
        self.state = State(self.stack.redis_url)
        reader = ArchiveReader(s3_for(self.stack.primary, self.stack.s3_access_key, self.stack.s3_secret_key))
        self.service = Service(self.stack, self.settings, self.state, reader, nudge=self._nudge_scheduler,
                               archive_now=self._archive_now, gc_now=self._gc_now)
        self.service._analysis_check_now = self._analysis_check_now
        self._health_stores = {r.name: s3_for(r, self.stack.s3_access_key, self.stack.s3_secret_key, max_attempts=1,
                                              timeout_s=2) for r in self.stack.regions}
        self._scheduler = None
        self._coordinators: dict = {}

    def _principal(self, request: Request) -> auth.Principal:
        # a read reads its project with the rate limit's token (a write may change it before reading it)
        read = request.path_params.get("projectName") if request.method in ("GET", "HEAD") else None
        return self.service.user(request.headers.get("authorization"), read)

    def _nudge_scheduler(self) -> None:
        try:
            if self._scheduler is None:
                self._scheduler = ray.get_actor(SCHEDULER, namespace=NAMESPACE)
            self._scheduler.wake.remote()
        except Exception:  # the scheduler polls anyway
            self._scheduler = None

    @staticmethod
    def _archive_now(older_than_s: float) -> dict:
        return ray.get(ray.get_actor(MONITOR, namespace=NAMESPACE).archive.remote(older_than_s), timeout=300)

    @staticmethod
    def _analysis_check_now(project: str, runs: int) -> dict:
        return ray.get(ray.get_actor(ANALYST, namespace=NAMESPACE).check.remote(project, runs), timeout=600)

    @staticmethod
    def _gc_now(dry_run: bool, grace_s: float | None, user: str) -> dict:
        return ray.get(ray.get_actor(MONITOR, namespace=NAMESPACE).gc.remote(dry_run, grace_s, user), timeout=3600)

    def invoke(self, token: str, op: str, kwargs: dict) -> dict:
        """The in-cluster SDK's door: {"ok": result} or {"error": {status, error, detail}}."""
        return self.service.invoke(token, op, kwargs)

    @app.get("/projects", response_model=list[Project])
    def list_projects(self, request: Request):
        return self.service.op_list_projects(self._principal(request))

    @app.get("/projects/{projectName}", response_model=Project)
    def get_project(self, projectName: str, request: Request):
        return self.service.op_get_project(self._principal(request), projectName)

    @app.put("/projects/{projectName}", response_model=Project,
             responses={201: {"model": Project, "description": "Registered"}})
    def put_project(self, projectName: str, body: ProjectIn, request: Request):
        out = self.service.op_put_project(self._principal(request), projectName, body)
        return JSONResponse(out["project"], status_code=201 if out["created"] else 200)

    # --- builds -----------------------------------------------------------------------------

    @app.post("/projects/{projectName}/builds/{buildID}/replication", response_model=Build)
    def post_replication(self, projectName: str, buildID: str, request: Request, op: str = Query(...)):
        """op=RETRY: start again every region whose replication gave up (the build is DEPLOYING again)."""
        who = self._principal(request)
        if op != "RETRY":
            raise ApiError(400, "unknown op", "supported: op=RETRY")
        return self.service.op_retry_replication(who, projectName, buildID)

    @app.post("/projects/{projectName}/builds", status_code=202, response_model=BuildAccepted)
    def post_build(self, projectName: str, body: BuildIn, request: Request):
        return self.service.op_create_build(self._principal(request), projectName, body)

    @app.get("/projects/{projectName}/builds", response_model=BuildPage, responses=CACHED)
    def list_builds(self, projectName: str, request: Request, nextCursor: str | None = None,
                    limit: str | None = None):
        return cached(request, self.service.op_list_builds(self._principal(request), projectName, nextCursor, limit))

    @app.get("/projects/{projectName}/builds/{buildID}", response_model=Build, responses=CACHED)
    def get_build(self, projectName: str, buildID: str, request: Request):
        return cached(request, self.service.op_get_build(self._principal(request), projectName, buildID))

    @app.get("/projects/{projectName}/builds/{buildID}/logs", response_model=BuildLog)
    def get_logs(self, projectName: str, buildID: str, request: Request, offset: int = Query(0, ge=0)):
        return self.service.op_get_logs(self._principal(request), projectName, buildID, offset)

    @app.patch("/projects/{projectName}/builds/{buildID}", response_model=Build)
    def patch_build(self, projectName: str, buildID: str, request: Request, op: str = Query(...)):
        who = self._principal(request)
        if op != "CANCEL":
            raise ApiError(400, "unknown op", "supported: op=CANCEL")
        return self.service.op_cancel_build(who, projectName, buildID)

    @app.put("/projects/{projectName}/builds/{buildID}/pin", response_model=Build)
    def pin_build(self, projectName: str, buildID: str, request: Request):
        """Retention keeps a pinned build whatever its policy says."""
        return self.service.op_pin_build(self._principal(request), projectName, buildID)

    @app.delete("/projects/{projectName}/builds/{buildID}/pin", response_model=Build)
    def unpin_build(self, projectName: str, buildID: str, request: Request):
        return self.service.op_unpin_build(self._principal(request), projectName, buildID)

    @app.patch("/projects/{projectName}/builds", response_model=Build)
    def patch_builds(self, projectName: str, body: CancelIn, request: Request, op: str = Query(...)):
        who = self._principal(request)
        if op != "CANCEL":
            raise ApiError(400, "unknown op", "supported: op=CANCEL")
        return self.service.op_cancel_build(who, projectName, body.buildID)

    # --- the GitHub push webhook --------------------------------------------------------------

    @app.post("/webhooks/github/{projectName}", response_model=WebhookResult,
              responses={202: {"model": WebhookResult, "description": "A build was queued"}},
              openapi_extra=WEBHOOK_OPENAPI)
    async def github_webhook(self, projectName: str, request: Request):
        """GitHub's push webhook, signed with the project's webhookSecret (X-Hub-Signature-256).
        A push to the default branch queues a build of its head commit, once per delivery ID."""
        body = await request.body()
        out, status = await asyncio.to_thread(self.service.github_push, projectName, dict(request.headers), body)
        return JSONResponse(out, status_code=status)

    @app.post("/projects/{projectName}/deployments", status_code=202, response_model=DeploymentAccepted,
              responses={200: {"model": Prediction, "description": "dryRun=true: the predicted rollout; nothing is created"}})
    def post_deployment(self, projectName: str, body: DeploymentIn, request: Request, dryRun: bool = False):
        """Deploy a build; with `dryRun=true`, predict how long the deployment would take (the
        fleet simulator over the project's hosts) and create nothing."""
        out = self.service.op_create_deployment(self._principal(request), projectName, body, dryRun)
        return JSONResponse(out, status_code=200) if dryRun else out

    @app.get("/projects/{projectName}/deployments", response_model=DeploymentPage, responses=CACHED)
    def list_deployments(self, projectName: str, request: Request, nextCursor: str | None = None,
                         limit: str | None = None):
        return cached(request, self.service.op_list_deployments(self._principal(request), projectName, nextCursor, limit))

    @app.get("/projects/{projectName}/deployments/{deploymentID}", response_model=Deployment, responses=CACHED)
    def get_deployment(self, projectName: str, deploymentID: str, request: Request):
        return cached(request, self.service.op_get_deployment(self._principal(request), projectName, deploymentID))

    @app.get("/projects/{projectName}/deployments/{deploymentID}/analysis")
    def get_analysis(self, projectName: str, deploymentID: str, request: Request):
        """The deployment's canary analysis: every wave's measurements, samples and decisions."""
        return self.service.op_get_analysis(self._principal(request), projectName, deploymentID)

    @app.get("/admin/freeze")
    def get_freeze(self, request: Request):
        """The stack-wide deploy freeze windows, and the one open now."""
        return self.service.op_get_freeze(self._principal(request))

    @app.put("/admin/freeze")
    def put_freeze(self, body: FreezeWindows, request: Request):
        """Replace the stack-wide deploy freeze windows (admins)."""
        return self.service.op_put_freeze(self._principal(request), body)

    @app.post("/projects/{projectName}/analysis/check")
    def analysis_check(self, projectName: str, request: Request, runs: int = Query(20, ge=1, le=200)):
        """An A/A run of the project's analysis on its current fleet: how often it would fail a
        build that changed nothing."""
        return self.service.op_analysis_check(self._principal(request), projectName, runs)

    @app.post("/projects/{projectName}/deployments/{deploymentID}", response_model=Deployment)
    def op_deployment(self, projectName: str, deploymentID: str, request: Request, op: str = Query(...)):
        return self.service.op_deployment_op(self._principal(request), projectName, deploymentID, op)

    @app.post("/projects/{projectName}/deployments/{deploymentID}/approve", response_model=Deployment)
    def approve_deployment(self, projectName: str, deploymentID: str, request: Request, body: ApproveIn | None = None):
        """Approve the gate a WAITING_APPROVAL deployment waits at (a token with the gate's role)."""
        return self.service.op_approve_deployment(self._principal(request), projectName, deploymentID, body)

    @app.get("/projects/{projectName}/notifications", response_model=NoticeList)
    def list_notifications(self, projectName: str, request: Request, limit: int = Query(100, ge=1, le=1000)):
        """The project's newest notifications: each event, destination, outcome and attempts."""
        return self.service.op_list_notifications(self._principal(request), projectName, limit)

    @app.get("/projects/{projectName}/hosts", response_model=list[Host])
    def get_hosts(self, projectName: str, request: Request):
        return self.service.op_list_hosts(self._principal(request), projectName)

    @app.post("/projects/{projectName}/rollback", status_code=202, response_model=DeploymentAccepted)
    def rollback(self, projectName: str, body: RollbackIn, request: Request):
        return self.service.op_rollback(self._principal(request), projectName, body)

    @app.get("/audit", response_model=AuditPage)
    def get_audit(self, request: Request, project: str | None = None, nextCursor: str | None = None,
                  limit: str | None = None):
        return self.service.op_audit(self._principal(request), project, nextCursor, limit)

    @app.post("/admin/archive", response_model=ArchiveResult)
    def post_archive(self, request: Request, olderThanS: float | None = Query(None, ge=0, le=MAX_AGE_S)):
        """Move finished builds older than olderThanS (default: the configured age) to the archive now."""
        return self.service.op_archive(self._principal(request), olderThanS)

    @app.post("/admin/gc", response_model=GcReport)
    def post_gc(self, request: Request, dryRun: bool = False, graceS: float | None = Query(None, ge=0, le=MAX_GRACE_S)):
        """A garbage-collection pass now: expire the builds and caches retention lets go, then sweep
        every regional store (dryRun: only say what would go and why). graceS overrides the grace period."""
        return self.service.op_gc(self._principal(request), dryRun, graceS)

    @app.get("/admin/gc", response_model=GcReport)
    def get_gc(self, request: Request):
        """The last garbage-collection pass's report."""
        return self.service.op_gc_report(self._principal(request))

    # --- health and the dashboard ------------------------------------------------------------

    @app.get("/healthz")
    def healthz(self):
        """Each dependency: Redis, every region's blob store, the Ray actors. 503 if any is down."""
        checks = {"redis": _check(self.state.ping), "ray": _check(lambda: ray.get(
            ray.get_actor(MONITOR, namespace=NAMESPACE).ping.remote(), timeout=5))}
        stores = {r: _check(store.reachable) for r, store in self._health_stores.items()}
        ok = all(checks.values()) and all(stores.values())
        return JSONResponse({"ok": ok, **checks, "stores": stores}, status_code=200 if ok else 503)

    @app.get("/", include_in_schema=False)
    def root(self):
        return RedirectResponse("/ui")

    @app.get("/ui", response_class=HTMLResponse, include_in_schema=False)
    def dashboard(self):
        # Only the page's own script may run: no inline handlers, nothing injected.
        html = DASHBOARD.read_text().replace("/*STATUSES*/null", STATUSES_JS)
        script = html.split("<script>", 1)[1].split("</script>", 1)[0]
        digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
        return HTMLResponse(html, headers={"Content-Security-Policy": (
            f"default-src 'self'; script-src 'sha256-{digest}'; style-src 'unsafe-inline'; "
            "img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")})


def build_app(stack_file: str):
    return GantryAPI.bind(stack_file)
