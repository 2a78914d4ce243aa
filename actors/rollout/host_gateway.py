"""The host gateway: a coordinator's own HTTP endpoint for the hosts of its datacenter.

It runs inside the coordinator actor, on the coordinator's Ray node (its region's), so a host's
reports, peer queries and long-polls go to its region and never through the head node. The head
node's API only tells a host where this endpoint is (`GET /dc/{dc}/endpoint`). Routes:

    POST /heartbeat   a report; the answer carries targets, the next report interval, a version
    POST /watch       wait until the host's targets change from a version (long-poll)
    POST /peers       peers for the chunks it wants, and which it should fetch from the origin
    POST /origin      presigned URLs in the region's store for chunks of its target builds
    POST /repair      the store served a bad chunk: have it copied again from the primary

Every request needs a host token for this datacenter naming the host the body speaks for;
bodies are capped (`max_body`); each host has a token bucket of requests (`rate`, past it a 429
with Retry-After) and one long-poll at a time (a new one answers the one before); errors are
JSON `{"error", "detail"}` like the API's.
"""
from __future__ import annotations

import asyncio
import asyncio.sslproto
import logging
import ssl
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import redis
from aiohttp import web
from pydantic import BaseModel, ValidationError

from gantry import auth
from gantry.actors.rollout.coordinator import Coordinator
from gantry.host_models import HeartbeatIn, OriginIn, PeersIn, RepairIn, WatchIn
from gantry.settings import Settings
from gantry.tokenbucket import TokenBucket

log = logging.getLogger("gantry.endpoint")
MAX_BODY = Settings().max_host_report_bytes
# asyncio's TLS (CPython 3.11+ sslproto) gives each connection a 256 KB read buffer, filled with
# zeros up front: 10,000 hosts' parked long-polls held 2.8 GB of it (bench/longpoll.py). A
# record is at most 16 KB, and a host's requests are small, so 32 KB reads cost nothing.
asyncio.sslproto.SSLProtocol.max_size = 32 * 1024


class Refused(Exception):
    def __init__(self, status: int, error: str, detail=None, headers: dict | None = None):
        super().__init__(error)
        self.status, self.error, self.detail, self.headers = status, error, detail, headers


class HostGateway:
    def __init__(self, coordinator: Coordinator, secret: str, dc: str, host: str = "127.0.0.1",
                 port: int = 0, max_body: int = MAX_BODY, threads: int = 32, rate: tuple[float, float] = (50, 200),
                 tls: ssl.SSLContext | None = None):
        """With `tls` it serves HTTPS only (hosts send their tokens here)."""
        self.coordinator, self.secret, self.dc = coordinator, secret, dc
        self.rate = rate   # requests per second per host, and the burst
        self.buckets: dict[str, TokenBucket] = {}
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix=f"endpoint-{dc}")
        self.loop = asyncio.new_event_loop()
        self.waiters: dict[str, set[asyncio.Future]] = {}
        self.served = 0   # requests answered, for the record of where hosts are served
        coordinator.memory.on_change = lambda host_id, version: self.loop.call_soon_threadsafe(self._wake, host_id)
        app = web.Application(client_max_size=max_body)
        for path, model, call in (("/heartbeat", HeartbeatIn, self._heartbeat), ("/watch", WatchIn, self._watch),
                                  ("/peers", PeersIn, self._peers), ("/origin", OriginIn, self._origin),
                                  ("/repair", RepairIn, self._repair)):
            app.router.add_post(path, self._route(model, call))
        self.runner = web.AppRunner(app, access_log=None)
        ready = threading.Event()

        def serve():
            asyncio.set_event_loop(self.loop)
            self.loop.run_until_complete(self.runner.setup())
            site = web.TCPSite(self.runner, host, port, ssl_context=tls)
            self.loop.run_until_complete(site.start())
            self.port = site._server.sockets[0].getsockname()[1]
            ready.set()
            self.loop.run_forever()

        threading.Thread(target=serve, daemon=True, name=f"endpoint-{dc}").start()
        if not ready.wait(30):
            raise RuntimeError("the host endpoint did not start")
        self.url = f"{'https' if tls else 'http'}://{host}:{self.port}"

    # --- plumbing -----------------------------------------------------------------------------

    def _route(self, model: type[BaseModel], call: Callable):
        async def handle(request: web.Request) -> web.Response:
            try:
                try:
                    who = auth.verify(self.secret, request.headers.get("Authorization"))
                except ValueError as e:
                    raise Refused(401, "unauthorized", str(e))
                if not who.host or who.dc != self.dc:
                    raise Refused(403, "forbidden", f"a host token for {self.dc} is required")
                try:
                    body = model.model_validate_json(await request.read())
                except web.HTTPRequestEntityTooLarge:
                    raise Refused(413, "request body too large", f"at most {request.app._client_max_size} bytes")
                except ValidationError as e:
                    raise Refused(422, "invalid request", [{"loc": list(x["loc"]), "msg": x["msg"]} for x in e.errors()])
                if body.hostID != who.host_id:
                    raise Refused(403, "forbidden", f"this token speaks for host {who.host_id} only")
                bucket = self.buckets.get(who.host_id)
                if bucket is None:
                    bucket = self.buckets[who.host_id] = TokenBucket(*self.rate)
                wait = bucket.allow()
                if wait > 0:
                    raise Refused(429, "too many requests", f"at most {self.rate[0]:g} a second per host",
                                  {"Retry-After": str(max(1, round(wait)))})
                result = await call(body, who)
                self.served += 1
                return web.json_response(result)
            except Refused as e:
                return web.json_response({"error": e.error, "detail": e.detail}, status=e.status, headers=e.headers)
            except ValueError as e:   # a bitfield that does not fit its artifact, say
                return web.json_response({"error": "invalid request", "detail": str(e)}, status=400)
            except (redis.ConnectionError, redis.TimeoutError):
                return web.json_response({"error": "unavailable", "detail": "state store unreachable"}, status=503,
                                         headers={"Retry-After": "2"})
            except Exception as e:
                log.exception("host endpoint error")
                return web.json_response({"error": "internal error", "detail": type(e).__name__}, status=500)
        return handle

    async def _run(self, fn, *args):
        return await self.loop.run_in_executor(self.pool, fn, *args)

    def _wake(self, host_id: str) -> None:
        for f in self.waiters.pop(host_id, ()):
            if not f.done():
                f.set_result(None)

    # --- routes -------------------------------------------------------------------------------

    async def _heartbeat(self, b: HeartbeatIn, who: auth.Principal) -> dict:
        c = self.coordinator
        return await self._run(lambda: c.heartbeat(
            b.hostID, b.address, {p: r.model_dump() for p, r in b.projects.items()},
            [a.model_dump() for a in b.artifacts], b.serves, b.download, b.rack, who.serves,
            b.activation))

    async def _watch(self, b: WatchIn, who: auth.Principal) -> dict:
        """Answers as soon as the host's targets change from `version`, or after `waitS`."""
        if self.coordinator.watch_version(b.hostID) == b.version and b.waitS > 0:
            self._wake(b.hostID)   # one long-poll per host: the one before answers now
            f = self.loop.create_future()
            self.waiters.setdefault(b.hostID, set()).add(f)
            try:
                await asyncio.wait_for(f, b.waitS)
            except asyncio.TimeoutError:
                pass
            finally:
                self.waiters.get(b.hostID, set()).discard(f)
        return {"version": self.coordinator.watch_version(b.hostID)}

    async def _peers(self, b: PeersIn, who: auth.Principal) -> dict:
        got = await self._run(self.coordinator.peers, b.hostID, b.address, b.artifact, b.chunks, b.wanted,
                              b.have, b.rack, b.failed, b.busy, b.served)
        if got is None:
            raise Refused(403, "forbidden", "only the artifacts of the builds this host is told to run or stage, "
                                            "with their chunk counts")
        return got

    async def _origin(self, b: OriginIn, who: auth.Principal) -> dict:
        urls = await self._run(self.coordinator.origin_urls, b.hostID, b.artifact, b.digests)
        if urls is None:
            raise Refused(403, "forbidden", "only chunks of the builds this host is told to run or stage")
        return {"urls": urls}

    async def _repair(self, b: RepairIn, who: auth.Principal) -> dict:
        repaired = await self._run(self.coordinator.repair, b.hostID, b.digest)
        if repaired is None:
            raise Refused(403, "forbidden", "only chunks of the builds this host is told to run or stage")
        return {"repaired": repaired}

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)

