"""`gantry-node`: the agent on one host. Never imports Ray.

Every second it reports to its datacenter's coordinator (over HTTP, through the API gateway,
with a host token): its state, the build it runs, and which chunks of the artifact in hand it
holds (the tracker announce). The reply names the build the host should run. To move to a build
it fetches the manifest from the regional blob store, downloads the missing chunks from peers
(origin as fallback), installs `releases/<buildID>`, switches `current`, runs the `[deploy]`
start and health commands, and reports `active`, or `failed` with the reason after switching
back. A crash at any point resumes from the verified chunks and installed releases on disk.
"""
from __future__ import annotations

import argparse
import logging
import os
import pwd
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

import httpx

from gantry.artifacts.manifest import BadManifest, Manifest
from gantry.node_daemon.chunkcache import ChunkCache
from gantry.node_daemon.downloader import Downloader
from gantry.node_daemon.installer import InstallFailed, Installer
from gantry.node_daemon.peer_server import PeerServer
from gantry.node_daemon.tokenbucket import TokenBucket
from gantry.peerauth import PeerAuth
from gantry.statuses import HostState, allowed

log = logging.getLogger("gantry.node")
MB = 1_000_000
URL_BATCH = 1000   # presigned chunk URLs asked for at once
URL_USE_S = 600    # used for this long (the coordinator signs them for 900 s)


def prune_host(installer: Installer, cache: ChunkCache, manifests: Path, max_bytes: int = 0) -> None:
    """Keep the installer's releases and, in the chunk cache, only their chunks (the active
    release's first, within `max_bytes` if set). `manifests` holds `<buildID>.build` (the
    release's manifest digest) and `<hex>.json` (the manifest) for each release installed."""
    installer.prune()
    kept = installer.release_ids()
    keep = []
    for build_id in kept:
        try:
            digest = (manifests / f"{build_id}.build").read_text().strip()
            keep.append(Manifest.from_bytes((manifests / f"{digest.split(':', 1)[1]}.json").read_bytes(), digest))
        except (OSError, ValueError, BadManifest):
            continue   # its chunks can be fetched again if it is ever rolled back to
    cache.prune(keep, max_bytes)
    used = {m.manifest_digest.split(":", 1)[1] for m in keep}
    for f in manifests.iterdir():
        if (f.suffix == ".build" and f.stem not in kept) or (f.suffix == ".json" and f.stem not in used):
            f.unlink(missing_ok=True)


def split_address(address: str) -> tuple[str, int]:
    """"ADDR:PORT" as (ADDR, PORT)."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"{address!r} is not ADDR:PORT")
    return host.strip("[]"), int(port)


def report_about(state: str, active: str | None, moving_to: str | None, failed: str | None) -> str | None:
    """The build a report's state is about, sent as its targetBuildID: a rollout counts a report
    only for that build. A host that failed an older target while it was told a newer one reports
    the older one, so the newer deployment does not see a failure that is not its own."""
    return {HostState.DOWNLOADING: moving_to, HostState.FAILED: failed, HostState.ACTIVE: active}.get(state)


class NodeDaemon:
    def __init__(self, home: Path, host_id: str, region: str, dc: str, coordinator: str, token: str,
                 listen: str = "127.0.0.1:0", max_up_mbps: float = 0, max_down_mbps: float = 0, interval_s: float = 1.0,
                 use_peers: bool = True, hook_user: tuple[int, int] | None = None, cache_max_bytes: int = 0,
                 advertise: str | None = None):
        self.cache_max_bytes = cache_max_bytes   # 0: the kept releases' chunks, however many bytes
        self.use_peers = use_peers
        self.home, self.host_id, self.region, self.dc = home, host_id, region, dc
        self.coordinator, self.token, self.interval_s = coordinator.rstrip("/"), token, interval_s
        self.cache = ChunkCache(home / "cache")
        self.installer = Installer(home, hook_user=hook_user)
        self.peer_auth = PeerAuth()   # the datacenter's key arrives with the first heartbeat reply
        self.manifests = home / "manifests"
        self.manifests.mkdir(parents=True, exist_ok=True)
        self.down = TokenBucket(max_down_mbps * MB, burst=max(max_down_mbps * MB / 4, 1 << 20)) if max_down_mbps else TokenBucket(0)
        up = TokenBucket(max_up_mbps * MB, burst=max(max_up_mbps * MB / 4, 1 << 20)) if max_up_mbps else TokenBucket(0)
        host, port = split_address(listen)
        self.server = PeerServer(self.cache, host=host, port=port, upload=up, auth=self.peer_auth, advertise=advertise)
        self.state, self.error = HostState.IDLE, ""
        self.failed_target: str | None = None
        self.known_target: str | None = None   # the last target the coordinator gave us
        self.moving_to: str | None = None      # the build being downloaded and installed
        self.manifest: Manifest | None = None      # of the build being fetched or run
        self.job: threading.Thread | None = None
        self.stop = threading.Event()
        self.last_download: dict = {}
        # one connection pool each to the gateway and to peers, kept open between requests
        self.api = httpx.Client(timeout=10)
        self.peer_http = httpx.Client(timeout=30, limits=httpx.Limits(max_keepalive_connections=32))
        self.store_http = httpx.Client(timeout=60)   # the region's store, through presigned URLs
        self._urls: dict[str, tuple[str, float]] = {}   # chunk digest -> (URL, use it until)
        self._urls_lock = threading.Lock()

    # --- talking to the coordinator ---------------------------------------------------------

    def _post(self, path: str, body: dict) -> dict:
        r = self.api.post(f"{self.coordinator}/dc/{self.dc}{path}", json=body,
                          headers={"Authorization": f"Bearer {self.token}"})
        r.raise_for_status()
        return r.json()

    def heartbeat(self) -> dict:
        m = self.manifest
        held = sorted(self.cache.held(m)) if m else []
        return self._post("/heartbeat", {
            "hostID": self.host_id, "region": self.region, "address": self.server.address,
            "state": self.state, "activeBuildID": self.installer.active(), "error": self.error,
            "targetBuildID": report_about(self.state, self.installer.active(), self.moving_to, self.failed_target),
            "artifact": m.manifest_digest if m else None, "chunks": held,
            "complete": bool(m) and len(held) == len(m.unique_chunks()), "download": self.last_download})

    def peers_for(self, wanted: set[str]) -> dict[str, list[str]]:
        """Ask the tracker once for all the chunks still wanted: digest -> peer addresses."""
        if not self.use_peers:
            return {}
        try:
            return self._post("/peers", {"hostID": self.host_id, "artifact": self.manifest.manifest_digest,
                                         "wanted": sorted(wanted)})["peers"]
        except Exception:  # no tracker answer: the origin still serves
            return {}

    def report_corrupt(self, digest: str) -> None:
        """The regional store served a bad copy: the coordinator heals it before we retry."""
        log.warning("bad copy of %s from the regional store; asking for a repair", digest)
        self._post("/repair", {"hostID": self.host_id, "digest": digest})

    # --- moving to a build ------------------------------------------------------------------

    def _get(self, url: str) -> bytes:
        r = self.store_http.get(url)
        r.raise_for_status()
        return r.content

    def origin_get(self, digest: str) -> bytes:
        """A chunk from the region's store, through a URL the coordinator signed for this host.
        URLs come in batches for the chunks still missing, and are used well before they expire."""
        with self._urls_lock:
            url, until = self._urls.get(digest, ("", 0.0))
            if time.monotonic() >= until:
                wanted = [digest] + [c.digest for c in self.cache.missing(self.manifest) if c.digest != digest]
                got = self._post("/origin", {"hostID": self.host_id, "artifact": self.manifest.manifest_digest,
                                             "digests": wanted[:URL_BATCH]})["urls"]
                until = time.monotonic() + URL_USE_S
                self._urls = {d: (u, until) for d, u in got.items()}
                url = got[digest]
        return self._get(url)

    def _manifest(self, digest: str, url: str) -> Manifest:
        local = self.manifests / f"{digest.split(':', 1)[1]}.json"
        data = local.read_bytes() if local.exists() else self._get(url)
        manifest = Manifest.from_bytes(data, digest)
        local.write_bytes(data)
        return manifest

    def deploy(self, build_id: str, reply: dict) -> None:
        previous = self.installer.active()
        self.moving_to = build_id
        self._become(HostState.DOWNLOADING)   # moving, even if the build is already installed: not yet healthy
        try:
            self.manifest = self._manifest(reply["manifestDigest"], reply.get("manifestURL") or "")
            (self.manifests / f"{build_id}.build").write_text(self.manifest.manifest_digest)
            if not self.installer.installed(build_id):
                self._check_disk(self.manifest)
                t0 = time.monotonic()
                stats = Downloader(self.cache, self.origin_get, self.peers_for,
                                   download=self.down,
                                   credential=lambda: self.peer_auth.credential(self.host_id),
                                   origin_corrupt=self.report_corrupt, http=self.peer_http).fetch(self.manifest)
                self.last_download = {"buildID": build_id, "seconds": round(time.monotonic() - t0, 3),
                                      "bytesFromPeers": stats.bytes_from_peers,
                                      "bytesFromOrigin": stats.bytes_from_origin,
                                      "blacklisted": sorted(stats.blacklisted)}
                self.installer.unpack(build_id, (self.cache.get(c.digest) for c in self.manifest.chunks))
            self.installer.switch(build_id)
            self.installer.run_hooks(build_id, reply.get("deployStart"), reply.get("deployHealth"), self.host_id)
            self._become(HostState.ACTIVE)
            self.error, self.failed_target = "", None
            prune_host(self.installer, self.cache, self.manifests, self.cache_max_bytes)
        except Exception as e:
            log.warning("deploy of %s failed: %s", build_id, e)
            if previous and self.installer.active() != previous and self.installer.installed(previous):
                self.installer.switch(previous)   # keep serving what worked
            self._become(HostState.FAILED)
            self.error, self.failed_target = f"{type(e).__name__}: {e}"[:500], build_id
            if isinstance(e, InstallFailed):
                prune_host(self.installer, self.cache, self.manifests, self.cache_max_bytes)

    def _become(self, to: HostState) -> None:
        if self.state != to and not allowed(self.state, to):
            raise RuntimeError(f"host state {self.state} cannot become {to}")   # a bug, not a fault
        self.state = to

    def _check_disk(self, manifest: Manifest) -> None:
        """Refuse before downloading a release this host has no room for: the missing chunks
        plus the unpacked tree (its size bounds the files' size)."""
        need = sum(c.size for c in self.cache.missing(manifest)) + manifest.size
        free = shutil.disk_usage(self.home).free
        if need > free:
            raise InstallFailed(f"not enough disk for the release: it needs {need} bytes, {free} are free")

    def step(self) -> None:
        reply = self.heartbeat()
        if reply.get("peerKey"):
            self.peer_auth.key = reply["peerKey"]
        target = self.known_target = reply.get("targetBuildID")
        busy = self.job is not None and self.job.is_alive()
        if busy or not target or target == self.failed_target:
            return
        if target == self.installer.active():
            if self.state != HostState.ACTIVE:
                self._become(HostState.ACTIVE)
                self.error = ""
            return
        self.job = threading.Thread(target=self.deploy, args=(target, reply), daemon=True)
        self.job.start()

    def run(self) -> None:
        self.server.start()
        if self.installer.active():
            self._become(HostState.ACTIVE)
        while not self.stop.is_set():
            wait = self.interval_s
            try:
                self.step()
            except httpx.HTTPStatusError as e:
                code = e.response.status_code
                log.warning("coordinator answered %s", code)
                if code in (429, 503):   # busy or its state store is down: come back when told
                    wait = max(wait, min(30.0, float(e.response.headers.get("Retry-After") or wait)))
            except Exception as e:
                log.warning("coordinator unreachable: %s", e)
            self.stop.wait(wait)
        self.server.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="gantry-node", description="the gantry host agent")
    ap.add_argument("--home", required=True)
    ap.add_argument("--host-id", required=True)
    ap.add_argument("--region", required=True)
    ap.add_argument("--dc", required=True)
    ap.add_argument("--coordinator", required=True, help="the gantry API URL")
    ap.add_argument("--listen", default="127.0.0.1:0", help="peer server ADDR:PORT (port 0: any free port)")
    ap.add_argument("--advertise", help="ADDR:PORT other hosts reach the peer server at (default: --listen's)")
    ap.add_argument("--max-up", type=float, default=0, help="upload cap in MB/s (0: none)")
    ap.add_argument("--max-down", type=float, default=0, help="download cap in MB/s (0: none)")
    ap.add_argument("--no-peers", action="store_true", help="fetch only from the regional blob store")
    ap.add_argument("--cache-max-mb", type=float, default=0,
                    help="cap on the chunk cache; it always keeps the active release (0: keep every kept release's chunks)")
    ap.add_argument("--hook-user", default="nobody" if os.geteuid() == 0 else None,
                    help="run [deploy] hooks as this user (default: nobody when run as root)")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    token = os.environ.get("GANTRY_HOST_TOKEN", "")
    if not token:
        print("GANTRY_HOST_TOKEN is required (gantry token --host)", file=sys.stderr)
        return 2
    hook_user = None
    if a.hook_user:
        try:
            pw = pwd.getpwnam(a.hook_user)
        except KeyError:
            print(f"--hook-user: no user named {a.hook_user!r}", file=sys.stderr)
            return 2
        hook_user = (pw.pw_uid, pw.pw_gid)
    home = Path(a.home)
    home.mkdir(parents=True, exist_ok=True)
    os.chmod(home, 0o711)   # the hook user passes through to its release, lists nothing
    try:
        host, _ = split_address(a.listen)
        if a.advertise:
            split_address(a.advertise)
    except ValueError as e:
        print(f"--listen/--advertise: {e}", file=sys.stderr)
        return 2
    if host in ("0.0.0.0", "::") and not a.advertise:
        print("--listen on every interface needs --advertise ADDR:PORT (the address peers use)", file=sys.stderr)
        return 2
    d = NodeDaemon(home, a.host_id, a.region, a.dc, a.coordinator, token, a.listen, a.max_up, a.max_down,
                   use_peers=not a.no_peers, hook_user=hook_user, cache_max_bytes=int(a.cache_max_mb * MB),
                   advertise=a.advertise)
    signal.signal(signal.SIGTERM, lambda *_: d.stop.set())
    d.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
