"""The forward proxy a build's fetch step reaches the network through.

It listens on a Unix socket that is bound into the sandbox (whose own network namespace has
nothing else) and serves one build: `CONNECT host:port` for HTTPS, and plain HTTP requests in
absolute form, each only to the hosts of the project's `egressAllow`. A name is resolved once,
here, and the connection goes to the address that was checked (loopback, private and the like
only for an entry marked ` private`); a plain request's Host header must name the URL's
authority. Anything else gets a 403 that says why, and the same line goes to the build's log. It runs as root in the build worker
and reads what build code sends, so every read is bounded in size and time.
"""
from __future__ import annotations

import asyncio
import os
import socket
import struct
import threading
from typing import Callable
from urllib.parse import urlsplit

from gantry.actors.build.sandbox.egress import Allow, BadEntry, internal, split_host_port

MAX_HEAD = 32 << 10          # request line and headers
HEAD_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 15.0
IDLE_TIMEOUT_S = 300.0       # a tunnel with no bytes either way for this long is closed
MAX_CONNECTIONS = 64
HOP_HEADERS = {b"proxy-connection", b"proxy-authorization", b"connection", b"keep-alive"}


class Refused(Exception):
    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status


class EgressProxy:
    """`start(path)` serves on a Unix socket from a thread of its own; `stop()` ends it and
    every connection through it."""

    def __init__(self, allow: Allow, log: Callable[[str], None], uid: int | None = None):
        """`uid`: the build's; the socket is its alone, and a connection from any other uid
        (checked with SO_PEERCRED) is closed unanswered."""
        self.allow, self.log, self.uid = allow, log, uid
        self.loop = asyncio.new_event_loop()
        self.server: asyncio.AbstractServer | None = None
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="egress-proxy")
        self.tasks: set[asyncio.Task] = set()
        self.allowed = self.refused = 0

    def start(self, path: str) -> None:
        self.thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._listen(path), self.loop).result(10)
        except BaseException:
            self.stop()
            raise

    async def _listen(self, path: str) -> None:
        self.server = await asyncio.start_unix_server(self._serve, path=path, limit=MAX_HEAD)
        if self.uid is None:
            os.chmod(path, 0o666)
        else:
            os.chown(path, self.uid, self.uid)
            os.chmod(path, 0o600)

    def stop(self) -> None:
        if not self.thread.is_alive():
            return

        async def close():
            if self.server:
                self.server.close()
            for t in list(self.tasks):
                t.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
        asyncio.run_coroutine_threadsafe(close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self.tasks.add(task)
        try:
            peer = peer_uid(writer)
            if self.uid is not None and peer != self.uid:
                self.log(f"egress proxy: refused a connection from uid {peer} (not the build's)")
                return
            if len(self.tasks) > MAX_CONNECTIONS:
                raise Refused(503, f"more than {MAX_CONNECTIONS} connections at once")
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT_S)
            except (asyncio.IncompleteReadError, asyncio.TimeoutError, asyncio.LimitOverrunError, ConnectionError):
                return   # a probe, a client that went, or a head too large or too slow: nothing to answer
            await self._request(head, reader, writer)
        except Refused as e:
            self.refused += 1
            self.log(f"egress proxy: refused: {e}")
            body = f"gantry egress proxy: {e}\n".encode()
            writer.write(b"HTTP/1.1 %d Refused\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
                         b"Connection: close\r\n\r\n%s" % (e.status, len(body), body))
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self.tasks.discard(task)
            try:
                writer.close()
            except Exception:
                pass

    async def _request(self, head: bytes, reader, writer) -> None:
        line, *headers = head[:-4].split(b"\r\n")
        try:
            method, target, version = line.decode("ascii").split(" ")
        except (UnicodeDecodeError, ValueError):
            raise Refused(400, "not an HTTP request")
        if method == "CONNECT":
            try:
                host, port = split_host_port(target)
            except BadEntry:
                raise Refused(400, f"CONNECT {target[:200]!r}: not host:port")
            what = f"CONNECT {target}"
            upstream_r, upstream_w = await self._open(what, host, port or 443, self._entry(what, host, port or 443))
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        else:
            url = urlsplit(target)
            if url.scheme != "http" or not url.hostname:
                raise Refused(400, f"{method} {target[:200]!r}: a proxy request names an http:// URL "
                                   "(https goes through CONNECT)")
            port = url.port or 80
            what = f"{method} http://{url.netloc}"
            entry = self._entry(what, url.hostname, port)
            named = [h.split(b":", 1)[1].strip().decode("latin-1") for h in headers if h.split(b":", 1)[0].strip().lower() == b"host"]
            if [n.lower() for n in named] != [url.netloc.lower()] and not (not named and version == "HTTP/1.0"):
                raise Refused(403, f"{what[:300]}: the Host header ({', '.join(named)[:200] or 'none'}) must be "
                                   f"the URL's authority ({url.netloc[:200]})")
            upstream_r, upstream_w = await self._open(what, url.hostname, port, entry)
            path = (url.path or "/") + (f"?{url.query}" if url.query else "")
            kept = [h for h in headers if h.split(b":", 1)[0].strip().lower() not in HOP_HEADERS]
            # one request per connection: the next one is checked on a connection of its own
            upstream_w.write(b"\r\n".join([f"{method} {path} {version}".encode(), *kept,
                                           b"Connection: close", b"", b""]))
        self.allowed += 1
        try:
            await asyncio.gather(_pipe(reader, upstream_w), _pipe(upstream_r, writer))
        finally:
            upstream_w.close()

    def _entry(self, what: str, host: str, port: int) -> tuple:
        entry = self.allow.permits(host, port)
        if entry is None:
            raise Refused(403, f"{what[:300]}: {host}:{port} is not in the project's egressAllow "
                               f"(allowed: {self.allow})")
        return entry

    async def _open(self, what: str, host: str, port: int, entry: tuple):
        """Resolve host once, check the address (unless the entry is marked private), connect to it."""
        try:
            infos = await asyncio.wait_for(asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM), CONNECT_TIMEOUT_S)
        except (OSError, asyncio.TimeoutError) as e:
            raise Refused(502, f"{what[:300]}: cannot resolve {host}: {e or 'timed out'}")
        address = infos[0][4][0]
        why = None if entry[2] else internal(address)
        if why:
            raise Refused(403, f"{what[:300]}: {host} resolves to {why}; only an egressAllow entry marked "
                               f"'private' may reach one")
        self.log(f"egress proxy: {what[:300]} -> {address}")
        try:
            return await asyncio.wait_for(asyncio.open_connection(address, port), CONNECT_TIMEOUT_S)
        except (OSError, asyncio.TimeoutError) as e:
            raise Refused(502, f"cannot reach {host}:{port} ({address}): {e or 'timed out'}")


def peer_uid(writer: asyncio.StreamWriter) -> int | None:
    sock = writer.get_extra_info("socket")
    try:
        _, uid, _ = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
        return uid
    except (OSError, AttributeError):
        return None


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await asyncio.wait_for(reader.read(65536), IDLE_TIMEOUT_S):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, asyncio.TimeoutError):
        writer.close()
