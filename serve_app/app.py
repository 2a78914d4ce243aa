"""The gantry HTTP API: FastAPI on Ray Serve. (No `from __future__ import annotations`: FastAPI
must see real types on the Serve class methods.)

Each route authenticates, then calls one `op_*` method with the caller's Principal; the same
methods serve the in-cluster SDK through `invoke` on the deployment's handle. Reads and writes go
straight to the Redis store (one atomic script each); the scheduler actor is only nudged. Every
error is JSON {"error", "detail"} and changes nothing. (Helpers live above the class: Serve
pickles it.)
"""

import asyncio
import base64
import hashlib
import inspect
import json
import logging
import time
from pathlib import Path

import ray
import redis
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, ValidationError
from ray import serve
from starlette.exceptions import HTTPException as StarletteHTTPException

from gantry import builds as B
from gantry import webhook
from gantry.actors import metrics
from gantry.actors.build.archive import ArchiveReader, list_page
from gantry.actors import audit
from gantry.actors.audit import AuditLog
from gantry.actors.deploy_store import ACTIVE, DeployStore
from gantry.actors.ratelimit import RateLimited, RateLimiter
from gantry.constants import HEAD, MONITOR, NAMESPACE, SCHEDULER, coordinator_name
from gantry.actors.store import BuildStore, TransitionRefused
from gantry.artifacts.blobstore import s3_for
from gantry.builds import BuildStatus
from gantry.settings import Settings
from gantry.serve_app import auth
from gantry.models import (ArchiveResult, AuditPage, Build, BuildAccepted, BuildIn, BuildLog, BuildPage,
                                     CancelIn, Deployment, DeploymentAccepted, DeploymentIn, DeploymentPage, Error,
                                     HeartbeatIn, Host, PeersIn, Project, ProjectIn, RepairIn, RollbackIn, StrategyIn,
                                     WebhookResult)
from gantry.topology import StackConfig

log = logging.getLogger("gantry.api")
ERRORS = {code: {"model": Error} for code in (400, 401, 403, 404, 409, 413, 422, 429)}
CACHED = {304: {"description": "Not Modified: the ETag in If-None-Match still matches"}}
DASHBOARD = Path(__file__).with_name("dashboard.html")
WEBHOOK_USER = "github-webhook"
MAX_AGE_S = 100 * 365 * 24 * 3600
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


class ApiError(Exception):
    def __init__(self, status: int, error: str, detail=None, headers: dict | None = None):
        self.status, self.error, self.detail, self.headers = status, error, detail, headers or {}


app = FastAPI(title="gantry", version="0.2.0", responses=ERRORS,
              description="Build a merged commit, store it, replicate it to every region and roll it out "
                          "to every host. Authenticate with `Authorization: Bearer <JWT>`.")


@app.exception_handler(ApiError)
async def _api_error(_: Request, e: ApiError):
    return JSONResponse({"error": e.error, "detail": e.detail}, status_code=e.status, headers=e.headers)


@app.exception_handler(RequestValidationError)
async def _validation_error(_: Request, e: RequestValidationError):
    return JSONResponse({"error": "invalid request", "detail": _problems(e.errors())}, status_code=422)


UNAVAILABLE_RETRY_S = 2


async def _unavailable(_: Request, e: Exception):
    """Redis down or restarting: not the caller's fault and not a bug; try again shortly."""
    log.warning("state store unreachable: %s", e)
    return JSONResponse({"error": "unavailable", "detail": "state store unreachable"}, status_code=503,
                        headers={"Retry-After": str(UNAVAILABLE_RETRY_S)})


for _cls in (redis.ConnectionError, redis.TimeoutError):   # BusyLoadingError is a ConnectionError
    app.add_exception_handler(_cls, _unavailable)


@app.exception_handler(Exception)
async def _unexpected(_: Request, e: Exception):
    log.exception("unhandled error")
    return JSONResponse({"error": "internal error", "detail": type(e).__name__}, status_code=500)


@app.exception_handler(StarletteHTTPException)
async def _http_error(_: Request, e: StarletteHTTPException):
    return JSONResponse({"error": str(e.detail), "detail": None}, status_code=e.status_code)


def _problems(errors) -> list[dict]:
    return [{"loc": list(err.get("loc", [])), "msg": err.get("msg")} for err in errors]


_SETTINGS = Settings.from_env()


class _TooLarge(Exception):
    pass


class BodyLimit:
    """Refuses a request body over the limit as it streams in, before any route reads it: a
    Content-Length over the limit at once, a chunked body when its bytes pass the limit. Either
    way the answer is 413 and nothing beyond the limit is held in memory."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        s = _SETTINGS
        limit = s.max_host_report_bytes if scope["path"].startswith("/dc/") else s.max_body_bytes
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            return await self._refuse(send, limit)
        seen, started = 0, False

        async def limited_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _TooLarge()
            return message

        async def tracked_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracked_send)
        except _TooLarge:
            if not started:
                await self._refuse(send, limit)

    @staticmethod
    async def _refuse(send, limit: int) -> None:
        body = json.dumps({"error": "request body too large", "detail": {"maxBytes": limit}}).encode()
        await send({"type": "http.response.start", "status": 413, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


app.add_middleware(BodyLimit)   # added first, so it sits inside the measuring middleware below


@app.middleware("http")
async def _measure(request: Request, call_next):
    started = time.perf_counter()
    response = await call_next(request)
    tags = {"route": getattr(request.scope.get("route"), "path", "unmatched"), "method": request.method,
            "code": str(response.status_code)}
    metrics.api_requests().inc(tags=tags)
    metrics.api_latency().observe(time.perf_counter() - started, tags=tags)
    return response


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


def _check_id(value: str, what: str) -> None:
    if not B.BUILD_ID_RE.match(value):
        raise ApiError(400, f"invalid {what}", "32 lowercase hexadecimal characters")


def _limit(limit: str | int | None) -> int:
    try:
        n = 20 if limit is None else int(limit)
    except (TypeError, ValueError):
        n = 0
    if not 1 <= n <= 100:
        raise ApiError(400, "invalid limit", "limit must be an integer from 1 to 100")
    return n


def _cursor(cursor: str | None) -> str | None:
    if cursor:
        try:
            B.parse_cursor(cursor)
        except ValueError as e:
            raise ApiError(400, "invalid nextCursor", str(e))
    return cursor or None


def _parse(model: type[BaseModel], body) -> BaseModel:
    if isinstance(body, model):
        return body
    try:
        return model.model_validate(body if body is not None else {})
    except ValidationError as e:
        raise ApiError(422, "invalid request", _problems(e.errors()))


def _public_project(name: str, p: dict, settings: Settings) -> dict:
    rate = float(p.get("ratePerS") or settings.rate_project_per_s)
    burst = int(float(p.get("rateBurst") or settings.rate_project_burst))
    return {"projectName": name, "repoURL": p["repoURL"], "createdAt": B.iso_ms(int(p["createdAt"])),
            "defaultBranch": p.get("defaultBranch") or "main", "coalesce": p.get("coalesce") == "1",
            "webhookConfigured": bool(p.get("webhookSecret")), "webhookPath": f"/webhooks/github/{name}",
            "rateLimit": {"perSecond": rate, "burst": burst}}


def _deployment_summary(dep: dict) -> dict:
    return {"deploymentID": dep["deploymentID"], "buildID": dep["buildID"], "status": dep["status"],
            "reason": dep.get("reason") or None, "createdAt": B.iso_ms(int(dep["createdAt"])),
            "updatedAt": B.iso_ms(int(dep["updatedAt"])), "createdBy": dep.get("createdBy", "")}


def cached(request: Request, body: dict) -> Response:
    """A read with a strong ETag over its JSON; 304 when the client already has it."""
    raw = json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
    etag = '"' + hashlib.blake2b(raw, digest_size=16).hexdigest() + '"'
    headers = {"ETag": etag, "Cache-Control": "private, no-cache"}
    sent = [t.strip() for t in (request.headers.get("if-none-match") or "").split(",")]
    if etag in sent or f"W/{etag}" in sent or "*" in sent:
        return Response(status_code=304, headers=headers)
    return Response(raw, media_type="application/json", headers=headers)


def _actor_get(ref, timeout_s: float = 30):
    """An actor call's result; a Redis outage inside the actor surfaces as the API's 503."""
    try:
        return ray.get(ref, timeout=timeout_s)
    except ray.exceptions.RayTaskError as e:
        if isinstance(e.cause, (redis.ConnectionError, redis.TimeoutError)):
            raise e.cause from None
        raise


def _check(probe) -> bool:
    try:
        return bool(probe())
    except Exception:
        return False


# What the in-cluster SDK may call through `invoke`: each name is an `op_<name>` method below.
SDK_OPS = ("list_projects", "get_project", "put_project", "create_build", "list_builds", "get_build", "get_logs",
           "cancel_build", "retry_replication", "create_deployment", "list_deployments", "get_deployment", "deployment_op", "list_hosts",
           "rollback", "audit", "archive")


# Hosts report every second, so allow far more requests in flight than Serve's default of 5.
@serve.deployment(name="gantry-api", max_ongoing_requests=200, ray_actor_options={"num_cpus": 0.1, "resources": HEAD})
@serve.ingress(app)
class GantryAPI:
    def __init__(self, stack_file: str):
        self.stack = StackConfig.load(stack_file)
        self.settings = Settings.from_env()
        self.store = BuildStore(self.stack.redis_url)
        self.deploys = DeployStore(self.stack.redis_url)
        self.audit_log = AuditLog(self.store.r)
        self.limiter = RateLimiter(self.store.r)
        self.archive_reader = ArchiveReader(s3_for(self.stack.primary, self.stack.s3_access_key,
                                                   self.stack.s3_secret_key))
        self.secret = self.stack.jwt_secret()
        self._scheduler = None
        self._coordinators: dict = {}

    # --- who, and how often -----------------------------------------------------------------

    def _who(self, authorization: str | None) -> auth.Principal:
        try:
            who = auth.verify(self.secret, authorization)
        except ValueError as e:
            raise ApiError(401, "unauthorized", str(e))
        if not who.host:
            rate = who.rate or (self.settings.rate_user_per_s, self.settings.rate_user_burst)
            self._take(f"user:{who.user}", *rate)
        return who

    def _principal(self, request: Request) -> auth.Principal:
        return self._who(request.headers.get("authorization"))

    def _take(self, scope: str, rate: float, burst: float) -> None:
        try:
            self.limiter.take(scope, rate, burst)
        except RateLimited as e:
            raise ApiError(429, "rate limit exceeded", {"scope": e.scope, "retryAfterS": e.retry_after_s},
                           headers={"Retry-After": str(e.retry_after_s)})

    def _write_allowed(self, name: str, project: dict) -> None:
        """A write to a project takes a token from the project's bucket."""
        limits = _public_project(name, project, self.settings)["rateLimit"]
        self._take(f"project:{name}", limits["perSecond"], limits["burst"])

    def _project(self, who: auth.Principal, name: str) -> dict:
        _check_name(name)
        if not who.may_access(name):
            raise ApiError(403, "forbidden", f"your token does not grant access to project '{name}'")
        project = self.store.get_project(name)
        if project is None:
            raise ApiError(404, "project not found", name)
        return project

    def _admin(self, who: auth.Principal, what: str) -> None:
        if not who.admin:
            raise ApiError(403, "forbidden", f"{what} needs an admin token")

    # --- the in-cluster SDK's door ------------------------------------------------------------

    def invoke(self, token: str, op: str, kwargs: dict) -> dict:
        """Run one op for the SDK's in-cluster client: {"ok": result} or {"error": {status, error, detail}}."""
        try:
            if op not in SDK_OPS:
                raise ApiError(400, "unknown op", f"supported: {', '.join(SDK_OPS)}")
            who = self._who(f"Bearer {token}")
            run = getattr(self, f"op_{op}")
            try:
                inspect.signature(run).bind(who, **kwargs)
            except TypeError as e:
                raise ApiError(400, "bad arguments", str(e))
            return {"ok": run(who, **kwargs)}
        except ApiError as e:
            return {"error": {"status": e.status, "error": e.error, "detail": e.detail}}

    # --- projects ---------------------------------------------------------------------------

    def op_list_projects(self, who: auth.Principal) -> list[dict]:
        names = [n for n in self.store.projects() if who.may_access(n)]
        return [_public_project(n, p, self.settings) for n in names if (p := self.store.get_project(n))]

    def op_get_project(self, who: auth.Principal, projectName: str) -> dict:
        return _public_project(projectName, self._project(who, projectName), self.settings)

    def op_put_project(self, who: auth.Principal, projectName: str, body) -> dict:
        _check_name(projectName)
        self._admin(who, "registering a project")
        body = _parse(ProjectIn, body)
        options = {}
        if body.webhookSecret is not None:
            options["webhookSecret"] = body.webhookSecret
        if body.defaultBranch is not None:
            options["defaultBranch"] = body.defaultBranch
        if body.coalesce is not None:
            options["coalesce"] = "1" if body.coalesce else "0"
        if body.rateLimit is not None:
            options.update(ratePerS=body.rateLimit.perSecond, rateBurst=body.rateLimit.burst)
        created = self.store.put_project(projectName, body.repoURL, options, audit=audit.prepare(
            who.user, "project.register", projectName, None,
            {"repoURL": body.repoURL, "changed": sorted(body.model_fields_set)}))
        return {"created": created, "project": self.op_get_project(who, projectName)}

    @app.get("/projects", response_model=list[Project])
    def list_projects(self, request: Request):
        return self.op_list_projects(self._principal(request))

    @app.get("/projects/{projectName}", response_model=Project)
    def get_project(self, projectName: str, request: Request):
        return self.op_get_project(self._principal(request), projectName)

    @app.put("/projects/{projectName}", response_model=Project,
             responses={201: {"model": Project, "description": "Registered"}})
    def put_project(self, projectName: str, body: ProjectIn, request: Request):
        out = self.op_put_project(self._principal(request), projectName, body)
        return JSONResponse(out["project"], status_code=201 if out["created"] else 200)

    # --- builds -----------------------------------------------------------------------------

    def _nudge_scheduler(self) -> None:
        try:
            if self._scheduler is None:
                self._scheduler = ray.get_actor(SCHEDULER, namespace=NAMESPACE)
            self._scheduler.wake.remote()
        except Exception:  # the scheduler polls anyway
            self._scheduler = None

    def _find(self, project: str, build_id: str) -> tuple[dict, tuple[list[dict], bytes] | None]:
        """The build's record, and for an archived build its (replication rows, log) from the archive."""
        _check_id(build_id, "buildID")
        rec, archived = self.store.get(build_id), None
        if rec is None and (key := self.store.archived_in(project, build_id)):
            if found := self.archive_reader.get(key, build_id):
                rec, archived = found[0], found[1:]
        if rec is None or rec.get("projectName") != project:
            raise ApiError(404, "build not found", build_id)
        return rec, archived

    def _build(self, project: str, build_id: str) -> dict:
        """The live record, or the archived one."""
        return self._find(project, build_id)[0]

    def _record(self, project: str, build_id: str) -> dict:
        rec, archived = self._find(project, build_id)
        return B.public_record(rec, archived[0] if archived else self.store.replication_rows(build_id))

    def _queue_build(self, user: str, project: str, sha: str, details: dict, priority: int,
                     build_id: str | None = None) -> dict:
        rec = self.store.create_build(project, sha, details, priority, build_id=build_id, audit=lambda i: audit.prepare(
            user, "build.create", project, i, {"commitSHA": sha, **{k: details[k] for k in ("delivery", "pusher") if k in details}}))
        self._nudge_scheduler()
        return rec

    def _accepted(self, rec: dict) -> dict:
        return {"buildID": rec["buildID"], "projectName": rec["projectName"], "commitSHA": rec["commitSHA"],
                "buildStatus": rec["buildStatus"], "createdAt": B.iso_ms(int(rec["createdAt"]))}

    def op_create_build(self, who: auth.Principal, projectName: str, body) -> dict:
        project = self._project(who, projectName)
        body = _parse(BuildIn, body)
        self._write_allowed(projectName, project)
        details = body.buildDetails.model_dump() if body.buildDetails else {}
        return self._accepted(self._queue_build(who.user, projectName, body.commitSHA, details, body.priority))

    def op_list_builds(self, who: auth.Principal, projectName: str, nextCursor: str | None = None,
                       limit: str | int | None = None) -> dict:
        self._project(who, projectName)
        n = _limit(limit)
        builds, cursor = list_page(self.store, self.archive_reader, projectName, n, _cursor(nextCursor))
        return {"builds": builds, "nextCursor": cursor, "limit": n}

    def op_get_build(self, who: auth.Principal, projectName: str, buildID: str) -> dict:
        self._project(who, projectName)
        return self._record(projectName, buildID)

    def op_get_logs(self, who: auth.Principal, projectName: str, buildID: str, offset: int = 0) -> dict:
        self._project(who, projectName)
        if not isinstance(offset, int) or offset < 0:
            raise ApiError(400, "invalid offset", "a byte offset >= 0")
        rec, archived = self._find(projectName, buildID)
        if archived:  # the whole log is in the archive file
            whole = archived[1]
            data, complete = whole[offset:offset + (1 << 20)], offset + (1 << 20) >= len(whole)
        else:
            data = self.store.read_log(buildID, offset)
            complete = (BuildStatus(rec["buildStatus"]).terminal
                        and len(self.store.read_log(buildID, offset + len(data), 1)) == 0)
        return {"buildID": buildID, "offset": offset, "nextOffset": offset + len(data),
                "data": data.decode(errors="replace"), "complete": complete}

    def op_cancel_build(self, who: auth.Principal, projectName: str, buildID: str) -> dict:
        project = self._project(who, projectName)
        self._build(projectName, buildID)
        self._write_allowed(projectName, project)
        try:
            self.store.transition(buildID, BuildStatus.CANCELLED, fields={"error": f"cancelled by {who.user}"},
                                  audit=audit.prepare(who.user, "build.cancel", projectName, buildID))
        except TransitionRefused as e:
            raise ApiError(409, "build cannot be cancelled", f"build is {e.current}")
        return self._record(projectName, buildID)

    def op_retry_replication(self, who: auth.Principal, projectName: str, buildID: str) -> dict:
        project = self._project(who, projectName)
        self._build(projectName, buildID)
        self._write_allowed(projectName, project)
        restarted = self.store.restart_replication(buildID, audit=audit.prepare(
            who.user, "replication.retry", projectName, buildID))
        if not restarted:
            raise ApiError(409, "nothing to retry", "no region of this build gave up on replication")
        return self._record(projectName, buildID)

    @app.post("/projects/{projectName}/builds/{buildID}/replication", response_model=Build)
    def post_replication(self, projectName: str, buildID: str, request: Request, op: str = Query(...)):
        """op=RETRY: start again every region whose replication gave up (the build is DEPLOYING again)."""
        who = self._principal(request)
        if op != "RETRY":
            raise ApiError(400, "unknown op", "supported: op=RETRY")
        return self.op_retry_replication(who, projectName, buildID)

    @app.post("/projects/{projectName}/builds", status_code=202, response_model=BuildAccepted)
    def post_build(self, projectName: str, body: BuildIn, request: Request):
        return self.op_create_build(self._principal(request), projectName, body)

    @app.get("/projects/{projectName}/builds", response_model=BuildPage, responses=CACHED)
    def list_builds(self, projectName: str, request: Request, nextCursor: str | None = None,
                    limit: str | None = None):
        return cached(request, self.op_list_builds(self._principal(request), projectName, nextCursor, limit))

    @app.get("/projects/{projectName}/builds/{buildID}", response_model=Build, responses=CACHED)
    def get_build(self, projectName: str, buildID: str, request: Request):
        return cached(request, self.op_get_build(self._principal(request), projectName, buildID))

    @app.get("/projects/{projectName}/builds/{buildID}/logs", response_model=BuildLog)
    def get_logs(self, projectName: str, buildID: str, request: Request, offset: int = Query(0, ge=0)):
        return self.op_get_logs(self._principal(request), projectName, buildID, offset)

    @app.patch("/projects/{projectName}/builds/{buildID}", response_model=Build)
    def patch_build(self, projectName: str, buildID: str, request: Request, op: str = Query(...)):
        who = self._principal(request)
        if op != "CANCEL":
            raise ApiError(400, "unknown op", "supported: op=CANCEL")
        return self.op_cancel_build(who, projectName, buildID)

    @app.patch("/projects/{projectName}/builds", response_model=Build)
    def patch_builds(self, projectName: str, body: CancelIn, request: Request, op: str = Query(...)):
        who = self._principal(request)
        if op != "CANCEL":
            raise ApiError(400, "unknown op", "supported: op=CANCEL")
        return self.op_cancel_build(who, projectName, body.buildID)

    # --- the GitHub push webhook --------------------------------------------------------------

    @app.post("/webhooks/github/{projectName}", response_model=WebhookResult,
              responses={202: {"model": WebhookResult, "description": "A build was queued"}},
              openapi_extra=WEBHOOK_OPENAPI)
    async def github_webhook(self, projectName: str, request: Request):
        """GitHub's push webhook, signed with the project's webhookSecret (X-Hub-Signature-256).
        A push to the default branch queues a build of its head commit, once per delivery ID."""
        body = await request.body()
        return await asyncio.to_thread(self._webhook, projectName, dict(request.headers), body)

    def _webhook(self, projectName: str, headers: dict, body: bytes):
        _check_name(projectName)
        project = self.store.get_project(projectName)
        if project is None:
            raise ApiError(404, "project not found", projectName)
        secret = project.get("webhookSecret")
        if not secret:
            raise ApiError(409, "webhook not configured", "set webhookSecret with PUT /projects/{projectName}")
        if not webhook.signature_ok(secret, body, headers.get("x-hub-signature-256")):
            raise ApiError(401, "bad signature", "X-Hub-Signature-256 does not match the body under this project's secret")
        delivery = headers.get("x-github-delivery")
        if delivery is not None and not webhook.DELIVERY_RE.match(delivery):
            raise ApiError(400, "invalid X-GitHub-Delivery", "a delivery ID of letters, digits and '-'")
        try:
            decision = webhook.decide(headers.get("x-github-event"), body, project.get("defaultBranch") or "main")
        except ValueError as e:
            raise ApiError(400, "invalid push payload", str(e))
        if not decision.build:
            return {"delivery": delivery, "queued": False, "reason": decision.reason}
        if not delivery:
            raise ApiError(400, "missing X-GitHub-Delivery", "needed to build each push once")
        self._write_allowed(projectName, project)
        details = {"branch": decision.branch, "source": "github-webhook", "delivery": delivery,
                   "pusher": decision.pusher}
        rec, created = self.store.build_for_delivery(
            projectName, delivery, lambda build_id: self._queue_build(
                WEBHOOK_USER, projectName, decision.sha, details, B.DEFAULT_PRIORITY, build_id),
            push=(decision.sha, hashlib.sha256(body).hexdigest()))
        superseded = []
        if created and project.get("coalesce") == "1":
            superseded = self.store.supersede_queued(projectName, rec, decision.branch, audit=lambda old: audit.prepare(
                WEBHOOK_USER, "build.supersede", projectName, old, {"by": rec["buildID"]}))
        out = {"delivery": delivery, "queued": True, "duplicate": not created, "reason": decision.reason,
               "buildID": rec["buildID"], "superseded": superseded}
        return JSONResponse(out, status_code=202 if created else 200)

    # --- deployments ------------------------------------------------------------------------

    def _deployable(self, project: str, build_id: str) -> dict:
        """A SUCCEEDED build, or a DEPLOYING one: a region deploys it once its replica lands."""
        rec, archived = self._find(project, build_id)
        if rec["buildStatus"] not in (BuildStatus.SUCCEEDED.value, BuildStatus.DEPLOYING.value):
            raise ApiError(409, "build is not deployable",
                           f"build is {rec['buildStatus']}; only SUCCEEDED or DEPLOYING builds deploy")
        if archived:
            raise ApiError(409, "build is archived", "archived builds are not deployed; build the commit again")
        return rec

    def _deploy(self, who: auth.Principal, project: str, build_id: str, strategy: StrategyIn, action: str) -> dict:
        previous = self.deploys.last_completed_build(project)
        previous = previous if previous != build_id else None
        dep = self.deploys.create(project, build_id, previous, strategy.model_dump(), [r.name for r in self.stack.regions],
                                  who.user, audit=lambda dep_id: audit.prepare(
                                      who.user, action, project, dep_id, {"buildID": build_id, "previousBuildID": previous}))
        return {"deploymentID": dep["deploymentID"], "projectName": project, "buildID": build_id,
                "status": dep["status"]}

    def _deployment(self, project: str, dep_id: str) -> dict:
        _check_id(dep_id, "deploymentID")
        dep = self.deploys.get(dep_id)
        if dep is None or dep["projectName"] != project:
            raise ApiError(404, "deployment not found", dep_id)
        return dep

    def _deployment_view(self, dep: dict) -> dict:
        regions, everyone, current = [], [], None
        outcomes = self.deploys.dc_outcomes(dep["deploymentID"])
        running = self.deploys.dc_current(dep["projectName"])
        replicas = {row["region"]: row for row in self.store.replication_rows(dep["buildID"])}
        for region in self.stack.regions:
            dcs, in_region = [], []
            row = replicas.get(region.name) or {}
            waiting = None
            if dep["status"] in ACTIVE and row.get("replicationStatus", "REPLICATED") != "REPLICATED":
                waiting = (f"waiting for the build's replica in {region.name} ({row['replicationStatus']}"
                           + (f": {row['error']}" if row.get("error") else "") + ")")
            for dc in region.datacenters:
                hosts = self.deploys.hosts(dc)
                in_region += hosts
                r = self.deploys.load_rollout(dep["deploymentID"], dc)
                dcs.append({"dc": dc, "currentBuildID": running.get(dc),
                            "phase": r["phase"] if r else ("WAITING_FOR_REPLICA" if waiting else None),
                            "waiting": None if r else waiting, "wave": r["wave"] + 1 if r else None,
                            "waves": len(r["waves"]) if r else None, "hosts": host_counts(hosts, dep["buildID"])})
                if r and current is None and outcomes.get(dc) != "DONE":
                    current = region.name
            everyone += in_region
            regions.append({"region": region.name, "dcs": dcs, "hosts": host_counts(in_region, dep["buildID"])})
        return {**_deployment_summary(dep), "projectName": dep["projectName"],
                "previousBuildID": dep.get("previousBuildID") or None, "strategy": json.loads(dep["strategy"]),
                "currentRegion": current if dep["status"] in ACTIVE else None,
                "regions": regions, "hosts": host_counts(everyone, dep["buildID"])}

    def op_create_deployment(self, who: auth.Principal, projectName: str, body) -> dict:
        project = self._project(who, projectName)
        body = _parse(DeploymentIn, body)
        self._deployable(projectName, body.buildID)
        self._write_allowed(projectName, project)
        return self._deploy(who, projectName, body.buildID, body.strategy or StrategyIn(), "deployment.create")

    def op_list_deployments(self, who: auth.Principal, projectName: str, nextCursor: str | None = None,
                            limit: str | int | None = None) -> dict:
        self._project(who, projectName)
        n = _limit(limit)
        deps, cursor = self.deploys.page(projectName, n, _cursor(nextCursor))
        return {"deployments": [_deployment_summary(d) for d in deps], "nextCursor": cursor, "limit": n}

    def op_get_deployment(self, who: auth.Principal, projectName: str, deploymentID: str) -> dict:
        self._project(who, projectName)
        return self._deployment_view(self._deployment(projectName, deploymentID))

    def op_deployment_op(self, who: auth.Principal, projectName: str, deploymentID: str, op: str) -> dict:
        project = self._project(who, projectName)
        dep = self._deployment(projectName, deploymentID)
        moves = {"PAUSE": ("PAUSED", ("IN_PROGRESS", "PENDING")), "RESUME": ("IN_PROGRESS", ("PAUSED",)),
                 "ABORT": ("ABORTED", ACTIVE)}
        if op not in moves:
            raise ApiError(400, "unknown op", "supported: op=PAUSE, op=RESUME, op=ABORT")
        self._write_allowed(projectName, project)
        to, allowed = moves[op]
        entry = audit.prepare(who.user, f"deployment.{op.lower()}", projectName, deploymentID)
        if self.deploys.set_status(deploymentID, to, allowed, "aborted by user" if op == "ABORT" else "", entry) is None:
            raise ApiError(409, f"deployment cannot {op.lower()}", f"deployment is {dep['status']}")
        return self._deployment_view(self._deployment(projectName, deploymentID))

    def op_list_hosts(self, who: auth.Principal, projectName: str) -> list[dict]:
        """Every host, but its build, state and error only where they are this project's: another
        project's build ID or error message (hook output, paths) is not this caller's to read."""
        self._project(who, projectName)
        hosts = [h for r in self.stack.regions for dc in r.datacenters for h in self.deploys.hosts(dc)]
        ids = sorted({b for h in hosts for b in (h.get("activeBuildID"), h.get("targetBuildID")) if b})
        owner = dict(zip(ids, self.store.projects_of(ids)))
        out = []
        for h in hosts:
            mine = {owner.get(h.get("activeBuildID")), owner.get(h.get("targetBuildID"))} & {projectName}
            out.append({"hostID": h["hostID"], "region": h["region"], "dc": h["dc"],
                        "activeBuildID": (h.get("activeBuildID") or None) if owner.get(h.get("activeBuildID")) == projectName else None,
                        "state": (h.get("state") or "idle") if mine else "idle",
                        "error": (h.get("error") or None) if mine else None,
                        "updatedAt": B.iso_ms(int(h["updatedAt"])) if h.get("updatedAt") else None})
        return out

    def op_rollback(self, who: auth.Principal, projectName: str, body=None) -> dict:
        project = self._project(who, projectName)
        body = _parse(RollbackIn, body)
        if body.buildID:
            target = self._deployable(projectName, body.buildID)["buildID"]
        else:
            current = self.deploys.desired(projectName).get("buildID")
            target = next((b for b in self.deploys.completed_builds(projectName) if b != current), None)
            if target is None:
                raise ApiError(409, "nothing to roll back to", "no earlier completed deployment of this project")
        self._write_allowed(projectName, project)
        return self._deploy(who, projectName, target, StrategyIn(steps=[1.0], bakeS=0), "rollback")

    @app.post("/projects/{projectName}/deployments", status_code=202, response_model=DeploymentAccepted)
    def post_deployment(self, projectName: str, body: DeploymentIn, request: Request):
        return self.op_create_deployment(self._principal(request), projectName, body)

    @app.get("/projects/{projectName}/deployments", response_model=DeploymentPage, responses=CACHED)
    def list_deployments(self, projectName: str, request: Request, nextCursor: str | None = None,
                         limit: str | None = None):
        return cached(request, self.op_list_deployments(self._principal(request), projectName, nextCursor, limit))

    @app.get("/projects/{projectName}/deployments/{deploymentID}", response_model=Deployment, responses=CACHED)
    def get_deployment(self, projectName: str, deploymentID: str, request: Request):
        return cached(request, self.op_get_deployment(self._principal(request), projectName, deploymentID))

    @app.post("/projects/{projectName}/deployments/{deploymentID}", response_model=Deployment)
    def op_deployment(self, projectName: str, deploymentID: str, request: Request, op: str = Query(...)):
        return self.op_deployment_op(self._principal(request), projectName, deploymentID, op)

    @app.get("/projects/{projectName}/hosts", response_model=list[Host])
    def get_hosts(self, projectName: str, request: Request):
        return self.op_list_hosts(self._principal(request), projectName)

    @app.post("/projects/{projectName}/rollback", status_code=202, response_model=DeploymentAccepted)
    def rollback(self, projectName: str, body: RollbackIn, request: Request):
        return self.op_rollback(self._principal(request), projectName, body)

    # --- audit and archive (admins) -------------------------------------------------------------

    def op_audit(self, who: auth.Principal, project: str | None = None, nextCursor: str | None = None,
                 limit: str | int | None = None) -> dict:
        self._admin(who, "reading the audit log")
        if project:
            _check_name(project)
        n = _limit(limit)
        entries, cursor = self.audit_log.page(project or None, n, _cursor(nextCursor))
        return {"entries": entries, "nextCursor": cursor, "limit": n}

    def op_archive(self, who: auth.Principal, olderThanS: float | None = None) -> dict:
        self._admin(who, "archiving builds")
        age = self.settings.archive_after_s if olderThanS is None else olderThanS
        if not isinstance(age, (int, float)) or not 0 <= age <= MAX_AGE_S:
            raise ApiError(400, "invalid olderThanS", f"an age in seconds from 0 to {MAX_AGE_S}")
        moved = ray.get(ray.get_actor(MONITOR, namespace=NAMESPACE).archive.remote(float(age)), timeout=300)
        self.audit_log.record(audit.prepare(who.user, "archive", None, None, {"olderThanS": age, "moved": moved}))
        return {"moved": moved}

    @app.get("/audit", response_model=AuditPage)
    def get_audit(self, request: Request, project: str | None = None, nextCursor: str | None = None,
                  limit: str | None = None):
        return self.op_audit(self._principal(request), project, nextCursor, limit)

    @app.post("/admin/archive", response_model=ArchiveResult)
    def post_archive(self, request: Request, olderThanS: float | None = Query(None, ge=0, le=MAX_AGE_S)):
        """Move finished builds older than olderThanS (default: the configured age) to the archive now."""
        return self.op_archive(self._principal(request), olderThanS)

    # --- health and the dashboard ------------------------------------------------------------

    @app.get("/healthz")
    def healthz(self):
        """Each dependency: Redis, every region's blob store, the Ray actors. 503 if any is down."""
        checks = {"redis": _check(self.store.ping), "ray": _check(lambda: ray.get(
            ray.get_actor(MONITOR, namespace=NAMESPACE).ping.remote(), timeout=5))}
        stores = {r: _check(store.reachable) for r, store in self._health_stores().items()}
        ok = all(checks.values()) and all(stores.values())
        return JSONResponse({"ok": ok, **checks, "stores": stores}, status_code=200 if ok else 503)

    def _health_stores(self) -> dict:
        if not hasattr(self, "_stores"):
            self._stores = {r.name: s3_for(r, self.stack.s3_access_key, self.stack.s3_secret_key, max_attempts=1,
                                           timeout_s=2) for r in self.stack.regions}
        return self._stores

    @app.get("/", include_in_schema=False)
    def root(self):
        return RedirectResponse("/ui")

    @app.get("/ui", response_class=HTMLResponse, include_in_schema=False)
    def dashboard(self):
        # Only the page's own script may run: no inline handlers, nothing injected.
        html = DASHBOARD.read_text()
        script = html.split("<script>", 1)[1].split("</script>", 1)[0]
        digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
        return HTMLResponse(html, headers={"Content-Security-Policy": (
            f"default-src 'self'; script-src 'sha256-{digest}'; style-src 'unsafe-inline'; "
            "img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")})

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
        return _actor_get(self._coordinator(request, dc).heartbeat.remote(body.model_dump()))

    @app.post("/dc/{dc}/peers")
    def host_peers(self, dc: str, body: PeersIn, request: Request):
        coord = self._coordinator(request, dc)
        return {"peers": _actor_get(coord.peers.remote(body.hostID, body.artifact, body.wanted))}

    @app.post("/dc/{dc}/repair")
    def host_repair(self, dc: str, body: RepairIn, request: Request):
        """The region's copy of a chunk failed verification on a host: copy it again from the primary."""
        return {"repaired": _actor_get(self._coordinator(request, dc).repair.remote(body.hostID, body.digest), 120)}


def build_app(stack_file: str):
    return GantryAPI.bind(stack_file)
