"""Findings 2, 5, 6, 8 and 13: what build code, peers and other projects can do to a host.
Real node daemons of the stack, real peer servers over HTTP, real releases on disk."""
import io
import os
import shutil
import tarfile
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from gantry.artifacts.blobstore import FsBlobStore, chunk_key
from gantry.artifacts.manifest import Manifest
from gantry.artifacts.publish import publish
from gantry.artifacts.unpack import UnsafeArchive
from gantry.node_daemon.chunkcache import ChunkCache
from gantry.node_daemon.daemon import NodeDaemon
from gantry.node_daemon.downloader import Downloader
from gantry.node_daemon.installer import InstallFailed, Installer
from gantry.tls import client_context
from gantry.peerauth import HEADER, PeerAuth, dc_key
from gantry.uids import PROJECT_UIDS
from helpers import wait_build

FAST = {"steps": [1, 1.0], "minHealthy": 0.9, "bakeS": 0.5}
HOOK = """echo "uid=$(id -u)"
echo "parent environ:"; tr '\\0' '\\n' < /proc/$PPID/environ
for p in /proc/[0-9]*; do tr '\\0' '\\n' < $p/environ 2>/dev/null; done | grep -c GANTRY_S3_SECRET_KEY
echo "own environment:"; env
exit 7
"""


def test_deploy_hooks_cannot_reach_the_daemons_credentials(api, stack, new_project):
    """A start hook read /proc/$PPID/environ, and the S3 secret came back in the host's error
    field, visible to another project's user."""
    toml = '[build]\ncommand = "mkdir -p dist && cp hook.sh dist/"\noutput = "dist"\n[deploy]\nstart = "sh hook.sh"\n'
    project, sha, _ = new_project("true", files={"gantry.toml": toml, "hook.sh": HOOK})
    other, _, _ = new_project("true")
    b = api.post(f"/projects/{project}/builds", json={"commitSHA": sha}).json()["buildID"]
    assert wait_build(api, project, b)["buildStatus"] == "SUCCEEDED"
    dep = api.post(f"/projects/{project}/deployments", json={"buildID": b, "strategy": FAST}).json()["deploymentID"]
    deadline = time.monotonic() + 180
    while api.get(f"/projects/{project}/deployments/{dep}").json()["status"] not in ("ROLLED_BACK", "COMPLETED"):
        assert time.monotonic() < deadline
        time.sleep(0.3)
    cfg = stack.config()
    secrets = [cfg.s3_secret_key, cfg.s3_access_key]
    hosts = api.get(f"/projects/{project}/hosts").json()
    failed = [h for h in hosts if h["state"] == "failed"]
    assert failed, ("the hook should have failed a host", api.get(f"/projects/{project}/deployments/{dep}").json(), hosts)
    for h in failed:
        assert h["error"] == "InstallFailed: start command exited with 7 (output in .gantry-hooks.log)", h
        log = (stack.home / "hosts" / h["hostID"] / "projects" / project / "releases" / b / ".gantry-hooks.log").read_text()
        uid = int(log.split("uid=", 1)[1].split()[0])
        assert uid in PROJECT_UIDS and "Permission denied" in log
        assert "GANTRY_BUILD_ID=" + b in log and "GANTRY_HOST_ID=" + h["hostID"] in log
        for s in secrets:
            assert s not in log
        assert "GANTRY_HOST_TOKEN" not in log and "\n0\n" in log   # no environ with the S3 key was readable
    seen_by_other = {h["hostID"]: h for h in api.get(f"/projects/{other}/hosts").json()}
    for h in failed:
        assert seen_by_other[h["hostID"]]["error"] is None and seen_by_other[h["hostID"]]["state"] == "idle"


def tar_stream(entries) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, kind, arg in entries:
            ti = tarfile.TarInfo(name)
            if kind == "dir":
                ti.type = tarfile.DIRTYPE
                t.addfile(ti)
            elif kind == "link":
                ti.type, ti.linkname = tarfile.SYMTYPE, arg
                t.addfile(ti)
            else:
                ti.size = len(arg)
                t.addfile(ti, io.BytesIO(arg))
    return buf.getvalue()


def test_a_chain_of_links_and_a_linked_marker_do_not_leave_the_release(tmp_path):
    """Ten relative symlinks that resolve outside the release were accepted by the extractor,
    and through such a link at `.complete` the installer created a file outside the release."""
    victim = tmp_path / "host" / "outside-the-release"
    # `a` comes first, while d/e/l9 does not exist yet, so a check of `a` alone resolves it
    # lexically (inside); once l9 -> l8 -> ... -> l0 -> "." exist, the kernel resolves it outside.
    dirs = [("d", "dir", None), ("d/e", "dir", None)]
    chain = [("d/e/l0", "link", ".")] + [(f"d/e/l{i}", "link", f"l{i - 1}") for i in range(1, 10)]
    escape = [("a", "link", "d/e/l9/" + "../" * 3 + "outside-the-release")]
    inst = Installer(tmp_path / "host")
    with pytest.raises(UnsafeArchive, match="another symlink"):
        inst.unpack("b1", iter([tar_stream(escape + dirs + chain)]))
    assert not (tmp_path / "host" / "releases" / "b1").exists()
    with pytest.raises(UnsafeArchive, match="reserves"):
        inst.unpack("b2", iter([tar_stream([("x", "dir", None), (".complete", "link", "../../outside-the-release")])]))
    assert not victim.exists() and not inst.installed("b2")


def test_a_marker_planted_as_a_link_is_not_followed(tmp_path):
    inst = Installer(tmp_path / "host")
    inst.unpack("b1", iter([tar_stream([("app", "file", b"v1")])]))
    marker = tmp_path / "host" / "releases" / "b1" / ".complete"
    marker.unlink()
    marker.symlink_to(tmp_path / "victim")
    assert not inst.installed("b1")          # a link is not the marker
    inst.unpack("b1", iter([tar_stream([("app", "file", b"v1")])]))
    assert inst.installed("b1") and not (tmp_path / "victim").exists()


def peer_address(stack, host_id: str) -> str:
    argv = stack.pids()[f"host-{host_id}"]["argv"]
    return argv[argv.index("--listen") + 1]


def get(url: str, headers: dict | None = None, ca_file: str = "") -> tuple[int, bytes]:
    context = client_context(ca_file) if ca_file else None
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10, context=context) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_peer_servers_answer_only_their_datacenter_and_only_chunk_digests(stack, tmp_path):
    """`GET /chunks//some/dir:<hex>` read a file outside the cache, with no authentication."""
    hexd = "ab" * 32
    planted = tmp_path / "elsewhere" / hexd[:2]
    planted.mkdir(parents=True)
    (planted / hexd).write_bytes(b"a file outside the chunk cache")
    host = next(h for h in stack.hosts() if h.startswith("us-east"))
    base = f"https://{peer_address(stack, host)}"
    secret, ca = stack.config().jwt_secret(), stack.config().ca_file
    own = PeerAuth(dc_key(secret, "us-east-a")).credential("us-east-a-h1")
    foreign = PeerAuth(dc_key(secret, "eu-west-a")).credential("eu-west-a-h0")
    forged = own.rsplit(":", 1)[0] + ":" + "0" * 64
    traversal = f"{base}/chunks/{tmp_path / 'elsewhere'}:{hexd}"
    assert get(traversal, ca_file=ca)[0] == 401
    for cred in (foreign, forged, "us-east-a-h1:1:abc"):
        assert get(traversal, {HEADER: cred}, ca)[0] == 401, cred
    code, body = get(traversal, {HEADER: own}, ca)
    assert code == 400 and b"outside" not in body
    assert get(f"{base}/chunks/blake3:{hexd}", {HEADER: own}, ca)[0] == 404


class FloodingPeer:
    """Answers every chunk request with an endless body (no Content-Length) and counts what it
    managed to send before the client hung up."""

    def __init__(self):
        self.sent = 0
        outer = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                self.send_response(200)
                self.send_header("Connection", "close")
                self.end_headers()
                block = os.urandom(1 << 16)
                try:
                    for _ in range(6400):           # 400 MiB, as in the review
                        self.wfile.write(block)
                        outer.sent += len(block)
                except OSError:
                    pass
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.address = f"127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


def test_a_peer_cannot_make_a_host_buffer_an_unbounded_body(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "blob").write_bytes(os.urandom(1 << 20))
    store = FsBlobStore(tmp_path / "origin")
    manifest, _ = publish(out, store, 256 << 10)
    flood = FloodingPeer()
    cache = ChunkCache(tmp_path / "me")
    stats = Downloader(cache, lambda d: store.get(chunk_key(d)), lambda wanted, failed: ({d: [flood.address] for d in wanted}, None),
                       workers=1, credential=lambda: "x").fetch(manifest)
    assert cache.missing(manifest) == [] and flood.address in stats.blacklisted
    time.sleep(0.5)
    assert flood.sent < 32 << 20, f"the peer pushed {flood.sent} bytes"
    flood.httpd.shutdown()


def test_a_release_bigger_than_the_free_disk_is_refused_before_download(tmp_path):
    d = NodeDaemon(tmp_path / "host", "h1", "r", "r-a", "http://127.0.0.1:1", "token")
    free = shutil.disk_usage(tmp_path).free   # far over it: other tests free disk meanwhile
    fake = Manifest(size=2 * free + (1 << 30), digest="blake3:" + "0" * 64, chunks=())
    with pytest.raises(InstallFailed, match="not enough disk"):
        d._check_disk(fake)
    d.server.httpd.server_close()   # never started
