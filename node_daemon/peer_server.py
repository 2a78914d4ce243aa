"""A host's peer server: serves the chunks it holds to other hosts in its datacenter (those
holding the datacenter's peer credential, see `peerauth`), within its upload cap. Anyone can
connect before a credential is checked, so connections are capped (one beyond the cap is closed
at once) and a connection that sends nothing for `idle_timeout_s` is closed. With `tls` it speaks
HTTPS only: the TLS handshake runs in the connection's own thread, within the same idle timeout,
so a client that stalls it holds one connection slot, never the accept loop."""
from __future__ import annotations

import os
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from gantry.node_daemon.chunkcache import ChunkCache
from gantry.peerauth import HEADER, PeerAuth, PeerDenied
from gantry.tokenbucket import TokenBucket

SLICE = 64 << 10
UPLOAD_SLOTS = 2   # chunks a host sends at once


class PeerServer:
    def __init__(self, cache: ChunkCache, host: str = "127.0.0.1", port: int = 0,
                 upload: TokenBucket | None = None, auth: PeerAuth | None = None, advertise: str | None = None,
                 max_uploads: int = UPLOAD_SLOTS, max_connections: int = 64, idle_timeout_s: float = 30.0,
                 tls: ssl.SSLContext | None = None):
        """Listens on host:port; `advertise` is the address other hosts reach it at (default: the
        one it listens on). At most `max_uploads` chunks go out at once; a request beyond that
        gets 503 at once, so downloaders spread over the holders and each chunk arrives whole soon."""
        self.slots = threading.BoundedSemaphore(max_uploads)
        self.cache, self.upload = cache, upload or TokenBucket(0)
        self.auth = auth or PeerAuth()   # with no key, every chunk request is refused
        self.bytes_served = 0
        self.lock = threading.Lock()   # guards bytes_served across handler threads
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = idle_timeout_s   # on the socket: a read (a head, the next request) waits no longer

            def log_message(self, *args):  # quiet; the daemon logs what matters
                pass

            def do_GET(self):
                if self.path == "/healthz":
                    return self._send(200, b"ok")
                if not self.path.startswith("/chunks/"):
                    return self._send(404, b"not found")
                try:
                    outer.auth.verify(self.headers.get(HEADER))
                except PeerDenied as e:
                    return self._send(401, str(e).encode())
                digest = self.path[len("/chunks/"):]
                try:
                    f = outer.cache.open(digest)
                except ValueError:
                    return self._send(400, b"bad digest")
                except OSError:
                    return self._send(404, b"not held")
                if not outer.slots.acquire(blocking=False):
                    f.close()
                    return self._send(503, b"busy")
                with f:   # from the cache file to the socket (sendfile, if not TLS), a slice per upload token
                    size = os.fstat(f.fileno()).st_size
                    self.send_response(200)
                    self.send_header("Content-Length", str(size))
                    self.send_header("Content-Type", "application/octet-stream")
                    self.end_headers()
                    try:
                        for offset in range(0, size, SLICE):
                            n = min(SLICE, size - offset)
                            outer.upload.take(n)
                            self.connection.sendfile(f, offset, n)
                    finally:
                        outer.slots.release()
                with outer.lock:
                    outer.bytes_served += size

            def _send(self, code: int, body: bytes):
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        Handler.protocol_version = "HTTP/1.1"   # keep-alive: a downloader reuses its connection
        self.httpd = _CappedServer((host, port), Handler, max_connections, tls, idle_timeout_s)
        self.address = advertise or f"{host}:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self) -> "PeerServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _CappedServer(ThreadingHTTPServer):
    """A thread per connection, at most `cap` of them: one more is closed unanswered."""
    daemon_threads = True
    request_queue_size = 128   # the listen backlog: past it, connects wait on SYN retries

    def __init__(self, address, handler, cap: int, tls: ssl.SSLContext | None = None, handshake_s: float = 30.0):
        self.connections = threading.BoundedSemaphore(cap)
        self.tls, self.handshake_s = tls, handshake_s
        super().__init__(address, handler)

    def process_request(self, request, client_address):
        if not self.connections.acquire(blocking=False):
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.connections.release()
            raise

    def process_request_thread(self, request, client_address):
        try:
            if self.tls is not None:
                request.settimeout(self.handshake_s)
                try:
                    request = self.tls.wrap_socket(request, server_side=True)
                except (OSError, ssl.SSLError):   # plain HTTP, a stalled or a bad handshake: closed unanswered
                    request.close()
                    return
            super().process_request_thread(request, client_address)
        finally:
            self.connections.release()
