"""The gantry HTTP API: FastAPI on Ray Serve. (No `from __future__ import annotations`: FastAPI
must see real types on the Serve class methods.)

Reads and writes go straight to the Redis store (one atomic script each); the scheduler actor
is only nudged. Every error is JSON {"error", "detail"} and changes nothing.
"""

import json
import logging

import ray
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from ray import serve
from starlette.exceptions import HTTPException as StarletteHTTPException

from gantry import builds as B
from gantry.actors.deploy_store import ACTIVE, DeployStore
from gantry.actors.ray_actors import HEAD, NAMESPACE, SCHEDULER, coordinator_name
from gantry.actors.store import BuildStore, TransitionRefused
from gantry.builds import BuildStatus
from gantry.config import Settings
from gantry.serve_app import auth
from gantry.serve_app.models import (Build, BuildAccepted, BuildIn, BuildLog, BuildPage, CancelIn,
                                     Deployment, DeploymentAccepted, DeploymentIn, Error, HeartbeatIn, Host,
                                     PeersIn, Project, ProjectIn, RollbackIn, StrategyIn)
from gantry.topology import StackConfig

log = logging.getLogger("gantry.api")
ERRORS = {400: {"model": Error}, 401: {"model": Error}, 403: {"model": Error},
          404: {"model": Error}, 409: {"model": Error}, 413: {"model": Error}, 422: {"model": Error}}


class ApiError(Exception):
    def __init__(self, status: int, error: str, detail=None):
        self.status, self.error, self.detail = status, error, detail


app = FastAPI(title="gantry", version="0.1.0", responses=ERRORS,
              description="Build a merged commit, store it, and track it to a terminal state.")


@app.exception_handler(ApiError)
async def _api_error(_: Request, e: ApiError):
    return JSONResponse({"error": e.error, "detail": e.detail}, status_code=e.status)


@app.exception_handler(RequestValidationError)
async def _validation_error(_: Request, e: RequestValidationError):
    detail = [{"loc": list(err.get("loc", [])), "msg": err.get("msg")} for err in e.errors()]
    return JSONResponse({"error": "invalid request", "detail": detail}, status_code=422)


@app.exception_handler(Exception)
async def _unexpected(_: Request, e: Exception):
    log.exception("unhandled error")
    return JSONResponse({"error": "internal error", "detail": type(e).__name__}, status_code=500)


@app.exception_handler(StarletteHTTPException)
async def _http_error(_: Request, e: StarletteHTTPException):
    return JSONResponse({"error": str(e.detail), "detail": None}, status_code=e.status_code)


_SETTINGS = Settings.from_env()


@app.middleware("http")
async def _limit_body(request: Request, call_next):
    s = _SETTINGS
    limit = s.max_host_report_bytes if request.url.path.startswith("/dc/") else s.max_body_bytes
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > limit):
        return JSONResponse({"error": "request body too large", "detail": {"maxBytes": limit}},
                            status_code=413)
    return await call_next(request)


def host_counts(hosts: list[dict], build_id: str) -> dict:
    c = {"total": len(hosts), "pending": 0, "downloading": 0, "active": 0, "failed": 0, "lost": 0}
    for h in hosts:
        state = h.get("state")
        if state == "lost":
            c["lost"] += 1
        elif state == "failed" and h.get("targetBuildID") == build_id:
            c["failed"] += 1
        elif state == "active" and h.get("activeBuildID") == build_id:
            c["active"] += 1
        elif state == "downloading" and h.get("targetBuildID") == build_id:
            c["downloading"] += 1
        else:
            c["pending"] += 1
    return c


def _check_name(name: str) -> None:
    if not B.valid_name(name):
        raise ApiError(400, "invalid project name",
                       "lowercase letters, digits, '.', '_' and '-', starting with a letter or digit, at most 63")


def _check_build_id(build_id: str) -> None:
    if not B.BUILD_ID_RE.match(build_id):
        raise ApiError(400, "invalid buildID", "32 lowercase hexadecimal characters")


# Hosts report every second, so allow far more requests in flight than Serve's default of 5.
@serve.deployment(name="gantry-api", max_ongoing_requests=200, ray_actor_options={"num_cpus": 0.1, "resources": HEAD})
@serve.ingress(app)
class GantryAPI:
    def __init__(self, stack_file: str):
        self.stack = StackConfig.load(stack_file)
        self.store = BuildStore(self.stack.redis_url)
        self.deploys = DeployStore(self.stack.redis_url)
        self.secret = self.stack.jwt_secret()
        self._scheduler = None
        self._coordinators: dict = {}

    # --- helpers --------------------------------------------------------------------------

    def _principal(self, request: Request) -> auth.Principal:
        try:
            return auth.verify(self.secret, request.headers.get("authorization"))
        except ValueError as e:
            raise ApiError(401, "unauthorized", str(e))

    def _project(self, request: Request, name: str) -> tuple[auth.Principal, dict]:
        who = self._principal(request)
        _check_name(name)
        if not who.may_access(name):
            raise ApiError(403, "forbidden", f"your token does not grant access to project '{name}'")
        project = self.store.get_project(name)
        if project is None:
            raise ApiError(404, "project not found", name)
        return who, project

    def _build(self, project: str, build_id: str) -> dict:
        _check_build_id(build_id)
        rec = self.store.get(build_id)
        if rec is None or rec.get("projectName") != project:
            raise ApiError(404, "build not found", build_id)
        return rec

    def _nudge_scheduler(self) -> None:
        try:
            if self._scheduler is None:
                self._scheduler = ray.get_actor(SCHEDULER, namespace=NAMESPACE)
            self._scheduler.wake.remote()
        except Exception:  # the scheduler polls anyway
            self._scheduler = None

    def _cancel(self, who: auth.Principal, project: str, build_id: str) -> dict:
        self._build(project, build_id)
        try:
            self.store.transition(build_id, BuildStatus.CANCELLED,
                                  fields={"error": f"cancelled by {who.user}"})
        except TransitionRefused as e:
            raise ApiError(409, "build cannot be cancelled", f"build is {e.current}")
        return self._record(build_id)

    def _record(self, build_id: str, rec: dict | None = None) -> dict:
        return B.public_record(rec or self.store.get(build_id), self.store.replication_rows(build_id))

    # --- routes ---------------------------------------------------------------------------

    @app.get("/healthz")
    def healthz(self) -> dict:
        try:
            ok = self.store.ping()
        except Exception:
            ok = False
        return {"ok": ok, "redis": ok}

    @app.put("/projects/{projectName}", response_model=Project)
    def put_project(self, projectName: str, body: ProjectIn, request: Request):
        who = self._principal(request)
        _check_name(projectName)
        if not who.admin:
            raise ApiError(403, "forbidden", "registering a project needs an admin token")
        created = self.store.put_project(projectName, body.repoURL)
        p = self.store.get_project(projectName)
        return JSONResponse({"projectName": projectName, "repoURL": p["repoURL"],
                             "createdAt": B.iso_ms(int(p["createdAt"]))}, status_code=201 if created else 200)

    @app.post("/projects/{projectName}/builds", status_code=202, response_model=BuildAccepted)
    def post_build(self, projectName: str, body: BuildIn, request: Request):
        self._project(request, projectName)
        details = body.buildDetails.model_dump() if body.buildDetails else {}
        rec = self.store.create_build(projectName, body.commitSHA, details, body.priority)
        self._nudge_scheduler()
        return {"buildID": rec["buildID"], "projectName": projectName, "commitSHA": body.commitSHA,
                "buildStatus": rec["buildStatus"], "createdAt": B.iso_ms(int(rec["createdAt"]))}

    @app.get("/projects/{projectName}/builds", response_model=BuildPage)
    def list_builds(self, projectName: str, request: Request, nextCursor: str | None = None,
                    limit: str | None = None):
        self._project(request, projectName)
        try:
            n = 20 if limit is None else int(limit)
        except ValueError:
            n = 0
        if not 1 <= n <= 100:
            raise ApiError(400, "invalid limit", "limit must be an integer from 1 to 100")
        try:
            builds, cursor = self.store.list_page(projectName, n, nextCursor or None)
        except ValueError as e:
            raise ApiError(400, "invalid nextCursor", str(e))
        return {"builds": builds, "nextCursor": cursor, "limit": n}

    @app.get("/projects/{projectName}/builds/{buildID}", response_model=Build)
    def get_build(self, projectName: str, buildID: str, request: Request):
        self._project(request, projectName)
        return self._record(buildID, self._build(projectName, buildID))

    @app.get("/projects/{projectName}/builds/{buildID}/logs", response_model=BuildLog)
    def get_logs(self, projectName: str, buildID: str, request: Request, offset: int = Query(0, ge=0)):
        self._project(request, projectName)
        rec = self._build(projectName, buildID)
        data = self.store.read_log(buildID, offset)
        return {"buildID": buildID, "offset": offset, "nextOffset": offset + len(data),
                "data": data.decode(errors="replace"),
                "complete": BuildStatus(rec["buildStatus"]).terminal
                and len(self.store.read_log(buildID, offset + len(data), 1)) == 0}

    @app.patch("/projects/{projectName}/builds/{buildID}", response_model=Build)
    def patch_build(self, projectName: str, buildID: str, request: Request, op: str = Query(...)):
        who, _ = self._project(request, projectName)
        if op != "CANCEL":
            raise ApiError(400, "unknown op", "supported: op=CANCEL")
        return self._cancel(who, projectName, buildID)

    @app.patch("/projects/{projectName}/builds", response_model=Build)
    def patch_builds(self, projectName: str, body: CancelIn, request: Request, op: str = Query(...)):
        who, _ = self._project(request, projectName)
        if op != "CANCEL":
            raise ApiError(400, "unknown op", "supported: op=CANCEL")
        return self._cancel(who, projectName, body.buildID)

    # --- deployments ----------------------------------------------------------------------

    def _deployable(self, project: str, build_id: str) -> dict:
        rec = self.store.get(build_id)
        if rec is None or rec.get("projectName") != project:
            raise ApiError(404, "build not found", build_id)
        if rec["buildStatus"] != BuildStatus.SUCCEEDED.value:
            raise ApiError(409, "build is not deployable", f"build is {rec['buildStatus']}; only SUCCEEDED builds deploy")
        return rec

    def _deploy(self, who: auth.Principal, project: str, build_id: str, strategy: StrategyIn) -> dict:
        previous = self.deploys.last_completed_build(project)
        dep = self.deploys.create(project, build_id, previous if previous != build_id else None,
                                  strategy.model_dump(), [r.name for r in self.stack.regions], who.user)
        return {"deploymentID": dep["deploymentID"], "projectName": project, "buildID": build_id,
                "status": dep["status"]}

    def _deployment(self, project: str, dep_id: str) -> dict:
        if not B.BUILD_ID_RE.match(dep_id):
            raise ApiError(400, "invalid deploymentID", "32 lowercase hexadecimal characters")
        dep = self.deploys.get(dep_id)
        if dep is None or dep["projectName"] != project:
            raise ApiError(404, "deployment not found", dep_id)
        return dep

    def _deployment_view(self, dep: dict) -> dict:
        regions, everyone, current = [], [], None
        outcomes = self.deploys.dc_outcomes(dep["deploymentID"])
        running = self.deploys.dc_current(dep["projectName"])
        for region in self.stack.regions:
            dcs, in_region = [], []
            for dc in region.datacenters:
                hosts = self.deploys.hosts(dc)
                in_region += hosts
                r = self.deploys.load_rollout(dep["deploymentID"], dc)
                dcs.append({"dc": dc, "currentBuildID": running.get(dc), "phase": r["phase"] if r else None, "wave": r["wave"] + 1 if r else None,
                            "waves": len(r["waves"]) if r else None, "hosts": host_counts(hosts, dep["buildID"])})
                if r and current is None and outcomes.get(dc) != "DONE":
                    current = region.name
            everyone += in_region
            regions.append({"region": region.name, "dcs": dcs, "hosts": host_counts(in_region, dep["buildID"])})
        return {"deploymentID": dep["deploymentID"], "projectName": dep["projectName"], "buildID": dep["buildID"],
                "previousBuildID": dep.get("previousBuildID") or None, "status": dep["status"],
                "reason": dep.get("reason") or None, "strategy": json.loads(dep["strategy"]),
                "createdAt": B.iso_ms(int(dep["createdAt"])), "updatedAt": B.iso_ms(int(dep["updatedAt"])),
                "createdBy": dep.get("createdBy", ""), "currentRegion": current if dep["status"] in ACTIVE else None,
                "regions": regions, "hosts": host_counts(everyone, dep["buildID"])}

    @app.post("/projects/{projectName}/deployments", status_code=202, response_model=DeploymentAccepted)
    def post_deployment(self, projectName: str, body: DeploymentIn, request: Request):
        who, _ = self._project(request, projectName)
        self._deployable(projectName, body.buildID)
        return self._deploy(who, projectName, body.buildID, body.strategy or StrategyIn())

    @app.get("/projects/{projectName}/deployments/{deploymentID}", response_model=Deployment)
    def get_deployment(self, projectName: str, deploymentID: str, request: Request):
        self._project(request, projectName)
        return self._deployment_view(self._deployment(projectName, deploymentID))

    @app.post("/projects/{projectName}/deployments/{deploymentID}", response_model=Deployment)
    def op_deployment(self, projectName: str, deploymentID: str, request: Request, op: str = Query(...)):
        self._project(request, projectName)
        dep = self._deployment(projectName, deploymentID)
        moves = {"PAUSE": ("PAUSED", ("IN_PROGRESS", "PENDING")), "RESUME": ("IN_PROGRESS", ("PAUSED",)),
                 "ABORT": ("ABORTED", ACTIVE)}
        if op not in moves:
            raise ApiError(400, "unknown op", "supported: op=PAUSE, op=RESUME, op=ABORT")
        to, allowed = moves[op]
        if self.deploys.set_status(deploymentID, to, allowed, "aborted by user" if op == "ABORT" else "") is None:
            raise ApiError(409, f"deployment cannot {op.lower()}", f"deployment is {dep['status']}")
        return self._deployment_view(self._deployment(projectName, deploymentID))

    @app.get("/projects/{projectName}/hosts", response_model=list[Host])
    def get_hosts(self, projectName: str, request: Request):
        self._project(request, projectName)
        return [{"hostID": h["hostID"], "region": h["region"], "dc": h["dc"],
                 "activeBuildID": h.get("activeBuildID") or None, "state": h.get("state") or "idle",
                 "error": h.get("error") or None, "updatedAt": B.iso_ms(int(h["updatedAt"])) if h.get("updatedAt") else None}
                for r in self.stack.regions for dc in r.datacenters for h in self.deploys.hosts(dc)]

    @app.post("/projects/{projectName}/rollback", status_code=202, response_model=DeploymentAccepted)
    def rollback(self, projectName: str, body: RollbackIn, request: Request):
        who, _ = self._project(request, projectName)
        if body.buildID:
            target = self._deployable(projectName, body.buildID)["buildID"]
        else:
            current = self.deploys.desired(projectName).get("buildID")
            target = next((b for b in self.deploys.completed_builds(projectName) if b != current), None)
            if target is None:
                raise ApiError(409, "nothing to roll back to", "no earlier completed deployment of this project")
        return self._deploy(who, projectName, target, StrategyIn(steps=[1.0], bakeS=0))

    # --- the gateway for node daemons ------------------------------------------------------

    def _coordinator(self, request: Request, dc: str):
        who = self._principal(request)
        if not who.host:
            raise ApiError(403, "forbidden", "a host token is required")
        if dc not in {d for r in self.stack.regions for d in r.datacenters}:
            raise ApiError(404, "datacenter not found", dc)
        if dc not in self._coordinators:
            self._coordinators[dc] = ray.get_actor(coordinator_name(dc), namespace=NAMESPACE)
        return self._coordinators[dc]

    @app.post("/dc/{dc}/heartbeat")
    def host_heartbeat(self, dc: str, body: HeartbeatIn, request: Request):
        return ray.get(self._coordinator(request, dc).heartbeat.remote(body.model_dump()), timeout=30)

    @app.post("/dc/{dc}/peers")
    def host_peers(self, dc: str, body: PeersIn, request: Request):
        coord = self._coordinator(request, dc)
        return {"peers": ray.get(coord.peers.remote(body.hostID, body.artifact, body.wanted), timeout=30)}



def build_app(stack_file: str):
    return GantryAPI.bind(stack_file)
