"""Shared by the integration tests: real git repositories and waiting on builds."""
from __future__ import annotations

import http.client
import os
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

TERMINAL = {"SUCCEEDED", "FAILED", "CANCELLED", "DEAD", "EXPIRED"}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.email=t@example.com", "-c", "user.name=t",
                           *args], check=True, capture_output=True, text=True).stdout.strip()


def make_repo(path: Path, command: str, output: str = "dist", timeout: float | None = None,
              files: dict[str, str] | None = None) -> tuple[Path, str]:
    """A real git repository with one commit whose gantry.toml builds with `command`."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    toml = f'[build]\ncommand = """{command}"""\noutput = "{output}"\n'
    if timeout is not None:
        toml += f"timeout = {timeout}\n"
    (path / "gantry.toml").write_text(toml)
    for name, text in (files or {}).items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    git(path, "add", "-A")
    git(path, "commit", "-qm", "build me")
    return path, git(path, "rev-parse", "HEAD")


def commit(repo: Path, files: dict[str, str]) -> str:
    for name, text in files.items():
        (repo / name).write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "change")
    return git(repo, "rev-parse", "HEAD")


def wait_build(api, project: str, build_id: str, until=TERMINAL, timeout_s: float = 120) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        r = api.get(f"/projects/{project}/builds/{build_id}")
        rec = r.json() if r.status_code == 200 else {}  # tolerate a Redis restart under way
        if rec.get("buildStatus") in until:
            return rec
        if time.monotonic() > deadline:
            raise AssertionError(f"build {build_id} still {rec.get('buildStatus')} after {timeout_s}s: {rec}")
        time.sleep(0.2)


def wait_until(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def host_processes_matching(text: str) -> list[str]:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if text in line and "ps -eo" not in line]


def reassemble(stack, region, manifest_digest: str, dest: Path) -> Path:
    """Extract an artifact from one region's blob store, verifying every chunk."""
    from gantry.artifacts.blobstore import chunk_key, manifest_key, s3_for
    from gantry.artifacts.manifest import Manifest
    from gantry.artifacts.unpack import extract, stream_chunks
    cfg = stack.config()
    store = s3_for(region, cfg.s3_access_key, cfg.s3_secret_key)
    manifest = Manifest.from_bytes(store.get(manifest_key(manifest_digest)), manifest_digest)
    extract(stream_chunks(manifest, lambda d: store.get(chunk_key(d))), dest)
    return dest


class HTTPStub:
    """A local HTTP server on 127.0.0.1 that answers every GET `status` with `body(request)`;
    HTTPS with `tls` (a peer of a stack holds a certificate from its CA: see `peer_tls`)."""

    def __init__(self, body, status: int = 200, tls=None):
        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                data = body(self)
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.address = f"127.0.0.1:{self.port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()


class BusyPeer(HTTPStub):
    """Answers every chunk request 503, as a peer whose upload slots are all taken would: forever."""

    def __init__(self, tls=None):
        super().__init__(lambda request: b"busy", status=503, tls=tls)


def ask_unix(path: str, data: bytes) -> bytes:
    """Send `data` on a Unix socket and read the answer to the end (a reset ends it too)."""
    import socket
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(path)
    out = b""
    try:
        s.sendall(data)
        while chunk := s.recv(65536):
            out += chunk
    except (ConnectionResetError, BrokenPipeError):   # closed unanswered
        pass
    s.close()
    return out


class RoguePeer(HTTPStub):
    """Serves garbage for every chunk."""

    def __init__(self, tls=None):
        super().__init__(lambda request: os.urandom(70_000), tls=tls)


def api_connection(stack, timeout: float) -> http.client.HTTPConnection:
    """A raw connection to the stack's API, for requests httpx will not send: HTTPS with the stack's CA."""
    from urllib.parse import urlparse
    from gantry.tls import client_context
    cfg = stack.config()
    url = urlparse(cfg.api_url)
    if cfg.ca_file:
        return http.client.HTTPSConnection(url.hostname, url.port, timeout=timeout, context=client_context(cfg.ca_file))
    return http.client.HTTPConnection(url.hostname, url.port, timeout=timeout)


def peer_tls(stack):
    """A server context with a certificate from the stack's CA for 127.0.0.1: what a host that
    lies holds as well as an honest one (None on a plain-HTTP stack)."""
    from gantry.cluster.certs import StackCA
    from gantry.tls import server_context
    cfg = stack.config()
    if not cfg.ca_file:
        return None
    return server_context(*map(str, StackCA(Path(cfg.ca_file).parent).issue("test-peer", ["127.0.0.1"])))
