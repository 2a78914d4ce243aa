"""The FastAPI app every route is declared on, with what wraps every request: errors as JSON, the
body limit, request metrics, and ETags on reads. (No `from __future__ import annotations`:
FastAPI must see real types.)"""

import hashlib
import json
import logging
import time

import redis
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from gantry.actors import metrics
from gantry.models import Error
from gantry.serve_app.body_limit import BodyLimit
from gantry.serve_app.errors import ApiError, problems

log = logging.getLogger("gantry.api")
ERRORS = {code: {"model": Error} for code in (400, 401, 403, 404, 409, 413, 422, 429)}
CACHED = {304: {"description": "Not Modified: the ETag in If-None-Match still matches"}}
UNAVAILABLE_RETRY_S = 2

# the docs pages' scripts come from this origin (fastapi-offline), not a CDN: this origin keeps the dashboard's token
app = FastAPIOffline(title="gantry", version="0.2.0", responses=ERRORS,
              description="Build a merged commit, store it, replicate it to every region and roll it out "
                          "to every host. Authenticate with `Authorization: Bearer <JWT>`.")


@app.exception_handler(ApiError)
async def _api_error(_: Request, e: ApiError):
    return JSONResponse({"error": e.error, "detail": e.detail}, status_code=e.status, headers=e.headers)


@app.exception_handler(RequestValidationError)
async def _validation_error(_: Request, e: RequestValidationError):
    return JSONResponse({"error": "invalid request", "detail": problems(e.errors())}, status_code=422)


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


@app.exception_handler(ClientDisconnect)
async def _gone(_: Request, e: ClientDisconnect):
    """The client went (or BodyLimit refused its body): nobody reads this answer."""
    return Response(status_code=499)


@app.exception_handler(StarletteHTTPException)
async def _http_error(_: Request, e: StarletteHTTPException):
    return JSONResponse({"error": str(e.detail), "detail": None}, status_code=e.status_code)


class _Measure:
    """Counts and times every request by route, method and status: plain ASGI (Starlette's
    BaseHTTPMiddleware, which this was, runs each request through a task group and a stream)."""

    def __init__(self, inner):
        self.inner = inner

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.inner(scope, receive, send)
        started, status = time.perf_counter(), [500]

        async def sending(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)
        try:
            await self.inner(scope, receive, sending)
        finally:
            tags = {"route": getattr(scope.get("route"), "path", "unmatched"), "method": scope["method"],
                    "code": str(status[0])}
            metrics.api_requests().inc(tags=tags)
            metrics.api_latency().observe(time.perf_counter() - started, tags=tags)


app.add_middleware(BodyLimit)   # added first, so it sits inside the measuring middleware below
app.add_middleware(_Measure)


def cached(request: Request, body: dict) -> Response:
    """A read with a strong ETag over its JSON; 304 when the client already has it."""
    raw = json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
    etag = '"' + hashlib.blake2b(raw, digest_size=16).hexdigest() + '"'
    headers = {"ETag": etag, "Cache-Control": "private, no-cache"}
    sent = [t.strip() for t in (request.headers.get("if-none-match") or "").split(",")]
    if etag in sent or f"W/{etag}" in sent or "*" in sent:
        return Response(status_code=304, headers=headers)
    return Response(raw, media_type="application/json", headers=headers)

