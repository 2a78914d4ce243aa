"""The FastAPI app every route is declared on, with what wraps every request: errors as JSON, the
body limit, request metrics, and ETags on reads. (No `from __future__ import annotations`:
FastAPI must see real types.)"""

import hashlib
import json
import logging
import time

import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from gantry.actors import metrics
from gantry.models import Error
from gantry.serve_app.errors import ApiError, problems
from gantry.settings import Settings

log = logging.getLogger("gantry.api")
ERRORS = {code: {"model": Error} for code in (400, 401, 403, 404, 409, 413, 422, 429)}
CACHED = {304: {"description": "Not Modified: the ETag in If-None-Match still matches"}}
UNAVAILABLE_RETRY_S = 2

app = FastAPI(title="gantry", version="0.2.0", responses=ERRORS,
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


@app.exception_handler(StarletteHTTPException)
async def _http_error(_: Request, e: StarletteHTTPException):
    return JSONResponse({"error": str(e.detail), "detail": None}, status_code=e.status_code)


_SETTINGS = Settings()


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



def cached(request: Request, body: dict) -> Response:
    """A read with a strong ETag over its JSON; 304 when the client already has it."""
    raw = json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
    etag = '"' + hashlib.blake2b(raw, digest_size=16).hexdigest() + '"'
    headers = {"ETag": etag, "Cache-Control": "private, no-cache"}
    sent = [t.strip() for t in (request.headers.get("if-none-match") or "").split(",")]
    if etag in sent or f"W/{etag}" in sent or "*" in sent:
        return Response(status_code=304, headers=headers)
    return Response(raw, media_type="application/json", headers=headers)

