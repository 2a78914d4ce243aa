"""`gantry-node`: the agent on one host. Never imports Ray.

A host serves one or more projects (`--project`, repeatable; none: every project) and runs each
one's build side by side under `projects/<project>/` (see `slot`), with one chunk cache for all.

It reports to its datacenter's coordinator at the coordinator's own endpoint in the region (the
API only tells it where that is), with a host token bound to it: for each project its state and
the build it runs, and a bitfield of the chunks it holds of each artifact in hand (whole once,
then what it added). The reply names, per project, the build to run and the build to stage, and
when to report next: often while it moves, rarely when idle. Between reports it long-polls the
endpoint, so a new target reaches it at once.

To stage a build it fetches the manifest through a presigned URL, downloads the missing chunks
from peers and the chunks the tracker hands it from the regional store (through presigned URLs),
and unpacks `releases/<buildID>` (`staged`). To run a build it does the same if needed, switches
`current`, runs the `[deploy]` start and health commands, and reports `active`, or `failed` with
the reason after switching back. One move at a time, project after project. A crash at any point
resumes from the verified chunks and installed releases on disk.
"""
from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from pathlib import Path

import httpx

from gantry.artifacts import bitfield
from gantry.artifacts.manifest import BadManifest, Manifest
from gantry.node_daemon.chunkcache import ChunkCache
from gantry.node_daemon.downloader import Downloader
from gantry.node_daemon.installer import InstallFailed, Installer
from gantry.node_daemon.peer_server import UPLOAD_SLOTS, PeerServer
from gantry.tokenbucket import TokenBucket
from gantry.peerauth import PeerAuth
from gantry.node_daemon.slot import Slot
from gantry.statuses import HostState
from gantry.tls import HostTLS, check_url
from gantry.uids import ProjectUids

log = logging.getLogger("gantry.node")
MB = 1_000_000
URL_BATCH = 1000   # presigned chunk URLs asked for at once
URL_USE_S = 600    # used for this long (the coordinator signs them for 900 s)
SEED_S = 600       # a release installed this recently is announced to the tracker (its peers may want it)


def prune_host(installers: list[Installer], cache: ChunkCache, manifests: Path, max_bytes: int = 0) -> None:
    """Keep each project's releases and, in the one chunk cache they share, only their chunks
    (the active releases' first, within `max_bytes` if set). `manifests` holds `<buildID>.build`
    (the release's manifest digest) and `<hex>.json` (the manifest) for each release installed."""
    for installer in installers:
        installer.prune()
    ids = [i.release_ids() for i in installers]
    kept = [r[0] for r in ids if r] + [b for r in ids for b in r[1:]]   # every active release first
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


def download_workers(cap: float) -> int:
    """Chunks a host fetches at once. Under a download cap, as many as a peer has upload slots:
    a peer like it sends each slot at half its cap, so two fill the cap, and more add requests,
    busy answers and threads, not bytes (bench/p2p.py at 32 hosts on 2 cores, CPU-bound: 1.22x
    the bound with 2 over 7 runs, 1.33x with 4; a host's CPU 15% lower). Uncapped, the agent's
    CPU binds, and 4 at once overlap its work with the wait for the next chunk (bench/agent.py:
    328 MB/s from a peer with 4, 296 with 2)."""
    return UPLOAD_SLOTS if cap > 0 else 4


def split_address(address: str) -> tuple[str, int]:
    """"ADDR:PORT" as (ADDR, PORT)."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"{address!r} is not ADDR:PORT")
    return host.strip("[]"), int(port)


class NodeDaemon:
    def __init__(self, home: Path, host_id: str, region: str, dc: str, api_url: str, token: str,
                 listen: str = "127.0.0.1:0", max_up_mbps: float = 0, max_down_mbps: float = 0, interval_s: float = 1.0,
                 use_peers: bool = True, hook_user: tuple[int, int] | None = None, cache_max_bytes: int = 0,
                 advertise: str | None = None, projects: list[str] | None = None, rack: str = "",
                 busy_budget_s: float = 10.0, tls: HostTLS = HostTLS()):
        self.cache_max_bytes = cache_max_bytes   # 0: the kept releases' chunks, however many bytes
        self.busy_budget_s = busy_budget_s       # peers that answer only 503 this long are reported
        self.use_peers, self.hook_user = use_peers, hook_user
        self.home, self.host_id, self.region, self.dc = home, host_id, region, dc
        # as root, each project's hooks run as a uid and gid of its own, unless --hook-user names one
        self.project_uids = ProjectUids(home / "project-uids.json") \
            if os.geteuid() == 0 and hook_user is None else None
        self.api_url, self.token, self.interval_s = api_url.rstrip("/"), token, interval_s
        self.endpoint: str | None = None   # the coordinator's endpoint, asked of the API
        self.rack = rack
        self.report_in = interval_s        # the coordinator says how long, in each reply
        self.version = 0                   # of this host's targets, as of the last reply
        self._announced: dict[str, int] = {}   # artifact -> the bitfield the coordinator took
        self.serving = sorted(projects) if projects else None   # None: every project
        self.cache = ChunkCache(home / "cache")   # one per host: a chunk two projects share is kept once
        os.chmod(self.cache.root, 0o700)   # no project's hooks read another's chunks
        self.slots: dict[str, Slot] = {}
        for d in sorted(p for p in (home / "projects").glob("*") if p.is_dir()):
            if self._serves(d.name):   # after a restart: what it already runs
                self.slot(d.name)
        self.peer_auth = PeerAuth()   # the datacenter's key arrives with the first heartbeat reply
        self.manifests = home / "manifests"
        self.manifests.mkdir(parents=True, exist_ok=True)
        os.chmod(self.manifests, 0o700)
        self.down = TokenBucket(max_down_mbps * MB, burst=max(max_down_mbps * MB / 4, 1 << 20)) if max_down_mbps else TokenBucket(0)
        up = TokenBucket(max_up_mbps * MB, burst=max(max_up_mbps * MB / 4, 1 << 20)) if max_up_mbps else TokenBucket(0)
        host, port = split_address(listen)
        self.host_ip = split_address(advertise)[0] if advertise else host   # where this host's apps listen
        self.tls = tls
        self.server = PeerServer(self.cache, host=host, port=port, upload=up, auth=self.peer_auth, advertise=advertise,
                                 tls=tls.server())
        self.moving: Slot | None = None   # the project whose build is being fetched (one at a time)
        self.job: threading.Thread | None = None
        self.stop = threading.Event()
        self.changed = threading.Event()   # a move ended: report now rather than at the next interval
        self.last_download, self.last_activation = {}, {}   # what its last moves took: predictions use them
        # one connection pool each to the gateway and to peers, kept open between requests
        self.api = httpx.Client(timeout=10, verify=tls.client())
        self.peer_http = httpx.Client(timeout=30, limits=httpx.Limits(max_keepalive_connections=32), verify=tls.client())
        self.store_http = httpx.Client(timeout=60, verify=tls.store_client())   # the region's store, presigned URLs
        self._urls: dict[str, tuple[str, float]] = {}   # chunk digest -> (URL, use it until)
        self._urls_lock = threading.Lock()

    def _serves(self, project: str) -> bool:
        return self.serving is None or project in self.serving

    def slot(self, project: str) -> Slot:
        if project not in self.slots:
            user = self.hook_user
            if self.project_uids is not None:
                user = (self.project_uids.of(project),) * 2
            self.slots[project] = Slot(self.home, project, user, group=f"node-{self.host_id}/{project}")
        return self.slots[project]

    # --- talking to the coordinator ---------------------------------------------------------

    def _endpoint(self) -> str:
        if self.endpoint is None:
            r = self.api.get(f"{self.api_url}/dc/{self.dc}/endpoint", headers={"Authorization": f"Bearer {self.token}"})
            r.raise_for_status()
            # the host token goes there next: never over plain HTTP unless this host was told to
            self.endpoint = check_url(r.json()["url"], "the coordinator's endpoint", plain_ok=not self.tls.ca).rstrip("/")
            log.info("reporting to %s (the %s coordinator's endpoint)", self.endpoint, self.dc)
        return self.endpoint

    def _post(self, path: str, body: dict, timeout: float = 10) -> dict:
        try:
            r = self.api.post(f"{self._endpoint()}{path}", json=body, timeout=timeout,
                              headers={"Authorization": f"Bearer {self.token}"})
        except httpx.TransportError:
            self.endpoint = None   # the coordinator moved or restarted: ask the API again
            raise
        r.raise_for_status()
        return r.json()

    def _held(self, manifest: Manifest) -> int:
        return bitfield.of(i for i, c in enumerate(manifest.unique_chunks()) if self.cache.has(c.digest))

    def heartbeat(self) -> dict:
        artifacts, sent, now = [], {}, time.monotonic()
        for s in list(self.slots.values()):   # what it can seed: builds in hand or installed lately
            if s.manifest and (s is self.moving or now < s.seed_until):
                digest, n = s.manifest.manifest_digest, len(s.manifest.unique_chunks())
                held, before = self._held(s.manifest), self._announced.get(digest)
                entry = {"artifact": digest, "chunks": n, "complete": held == bitfield.full(n)}
                if before is None or before & ~held:   # new to it, or a chunk was dropped
                    entry["bits"] = bitfield.encode(held)
                elif held != before:
                    entry["add"] = bitfield.encode(held & ~before)
                artifacts.append(entry)
                sent[digest] = held
        reply = self._post("/heartbeat", {
            "hostID": self.host_id, "region": self.region, "address": self.server.address, "rack": self.rack,
            "serves": self.serving, "projects": {p: s.report() for p, s in list(self.slots.items())},
            "artifacts": artifacts, "download": self.last_download, "activation": self.last_activation})
        resend = set(reply.get("resend") or ())
        self._announced = {d: b for d, b in sent.items() if d not in resend}
        self.report_in = float(reply.get("reportInS") or self.interval_s)
        self.version = int(reply.get("version") or 0)
        return reply

    def watch(self, wait_s: float) -> bool:
        """Wait up to `wait_s` for a new target; True if one came."""
        got = self._post("/watch", {"hostID": self.host_id, "version": self.version, "waitS": wait_s},
                         timeout=wait_s + 10)
        return got.get("version") != self.version

    def peers_for(self, wanted: set[str], failed: dict[str, str] | None = None) -> tuple[dict[str, list[str]], set[str] | None]:
        """Ask the tracker once for all the chunks still wanted: digest -> peer addresses, and
        the chunks to fetch from the origin (None: the tracker did not say). `failed`: peers
        it found serving or wanting (address -> "served", "missing" or "busy")."""
        failed = failed or {}
        if not self.use_peers:
            return {}, None
        manifest = self.moving.manifest
        chunks = manifest.unique_chunks()
        want = bitfield.of(i for i, c in enumerate(chunks) if c.digest in wanted)
        try:   # `wanted` is what the cache lacks (the downloader just checked): the rest is held
            got = self._post("/peers", {
                "hostID": self.host_id, "address": self.server.address, "rack": self.rack,
                "artifact": manifest.manifest_digest, "chunks": len(chunks), "wanted": bitfield.encode(want),
                "have": bitfield.encode(bitfield.full(len(chunks)) & ~want),
                "failed": sorted(p for p, why in failed.items() if why == "missing")[:16],
                "busy": sorted(p for p, why in failed.items() if why == "busy")[:16],
                "served": sorted(p for p, why in failed.items() if why == "served")[:16]})
            peers: dict[str, list[str]] = {}
            for p in got["peers"]:
                for i in bitfield.indexes(bitfield.decode(p["bits"], len(chunks))):
                    peers.setdefault(chunks[i].digest, []).append(p["address"])
            return peers, {chunks[i].digest for i in bitfield.indexes(bitfield.decode(got["origin"], len(chunks)))}
        except Exception:  # no tracker answer: the origin still serves
            return {}, None

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
        manifest = self.moving.manifest
        with self._urls_lock:
            url, until = self._urls.get(digest, ("", 0.0))
            if time.monotonic() >= until:
                wanted = [digest] + [c.digest for c in self.cache.missing(manifest) if c.digest != digest]
                got = self._post("/origin", {"hostID": self.host_id, "artifact": manifest.manifest_digest,
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

    def _fetch_release(self, slot: Slot, build_id: str, info: dict) -> None:
        """Download, verify and unpack `build_id` into releases/<buildID> (if not there yet)."""
        inst = slot.installer
        slot.manifest = self._manifest(info["manifestDigest"], info.get("manifestURL") or "")
        (self.manifests / f"{build_id}.build").write_text(slot.manifest.manifest_digest)
        if inst.installed(build_id):
            return
        self._check_disk(slot.manifest)
        t0, started, cpu0 = time.monotonic(), time.time(), time.process_time()
        stats = Downloader(self.cache, self.origin_get, self.peers_for,
                           download=self.down, workers=download_workers(self.down.rate),
                           credential=lambda: self.peer_auth.credential(self.host_id),
                           origin_corrupt=self.report_corrupt, http=self.peer_http,
                           busy_budget_s=self.busy_budget_s, scheme=self.tls.scheme).fetch(slot.manifest)
        self.last_download = {"project": slot.project, "buildID": build_id, "startedAt": round(started, 3),
                              "seconds": round(time.monotonic() - t0, 3),
                              # the whole agent's CPU meanwhile (seeding and reports too)
                              "cpuSeconds": round(time.process_time() - cpu0, 3),
                              "bytesFromPeers": stats.bytes_from_peers,
                              "bytesFromOrigin": stats.bytes_from_origin,
                              "blacklisted": sorted(stats.blacklisted)}
        inst.unpack(build_id, (self.cache.get(c.digest) for c in slot.manifest.chunks))

    def stage(self, slot: Slot, build_id: str, info: dict) -> None:
        """Download and unpack a build beside the one running, without switching to it."""
        slot.moving_to = build_id
        slot.become(HostState.DOWNLOADING)
        try:
            self._fetch_release(slot, build_id, info)
            slot.become(HostState.STAGED)
            slot.error, slot.failed_target = "", None
            slot.seed_until = time.monotonic() + SEED_S
        except Exception as e:
            log.warning("staging %s (%s) failed: %s", build_id, slot.project, e)
            slot.become(HostState.FAILED)
            slot.error, slot.failed_target = f"{type(e).__name__}: {e}"[:500], build_id
        self.changed.set()

    def deploy(self, slot: Slot, build_id: str, info: dict) -> None:
        inst = slot.installer
        previous = inst.active()
        slot.moving_to = build_id
        slot.become(HostState.DOWNLOADING)   # moving, even if the build is already installed: not yet healthy
        try:
            self._fetch_release(slot, build_id, info)
            began = time.monotonic()
            inst.switch(build_id)
            try:
                inst.run_hooks(build_id, info.get("deployStart"), info.get("deployHealth"), self.host_id, self.host_ip)
            except BaseException:
                inst.stop(build_id)   # what a failed release started does not run on beside the previous one
                raise
            inst.stop_others(build_id)   # the new release is healthy: the previous one's service stops
            slot.become(HostState.ACTIVE)
            slot.error, slot.failed_target = "", None
            slot.seed_until = time.monotonic() + SEED_S
            self.last_activation = {"project": slot.project, "buildID": build_id, "seconds": round(time.monotonic() - began, 3)}
            self._prune()
        except Exception as e:
            log.warning("deploy of %s (%s) failed: %s", build_id, slot.project, e)
            if previous and inst.active() != previous and inst.installed(previous):
                inst.switch(previous)   # keep serving what worked
            elif not previous:
                inst.deactivate()   # its first release failed: it runs nothing, and says so
            slot.become(HostState.FAILED)
            slot.error, slot.failed_target = f"{type(e).__name__}: {e}"[:500], build_id
            if isinstance(e, InstallFailed):
                self._prune()
        self.changed.set()

    def _prune(self) -> None:
        prune_host([s.installer for s in list(self.slots.values())], self.cache, self.manifests,
                   self.cache_max_bytes)

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
        busy = self.job is not None and self.job.is_alive()
        for project, info in sorted((reply.get("projects") or {}).items()):
            if not self._serves(project):
                continue
            slot, target, stage = self.slot(project), info.get("targetBuildID"), info.get("stage") or {}
            if busy and slot is self.moving:
                continue
            if slot.back_on(target, stage.get("buildID")):
                slot.become(HostState.ACTIVE)   # back on the build it runs (a rollback, say)
                slot.error = ""
            elif not busy and slot.wants(target):   # one move at a time, project after project
                busy = self._start(slot, self.deploy, target, info)
            elif not busy and slot.wants_staged(stage.get("buildID")):   # activating comes first
                busy = self._start(slot, self.stage, stage["buildID"], stage)

    def _start(self, slot: Slot, job, build_id: str, info: dict) -> bool:
        self.moving = slot
        self.job = threading.Thread(target=job, args=(slot, build_id, info), daemon=True)
        self.job.start()
        return True

    def run(self) -> None:
        """Report, act on the answer, then wait for the next report on a long-poll that ends
        early when a target changes (or a move of its own ends)."""
        self.server.start()
        while not self.stop.is_set():
            wait = self.interval_s
            try:
                self.changed.clear()
                self.step()
                if self.job is not None and self.job.is_alive():   # no other move starts before
                    self.changed.wait(self.report_in)                # it ends: report the moment it does
                elif not self.changed.is_set():
                    self.watch(self.report_in)
                continue
            except httpx.HTTPStatusError as e:
                code = e.response.status_code
                log.warning("coordinator answered %s", code)
                if code in (429, 503):   # busy or its state store is down: come back when told
                    wait = max(wait, min(30.0, float(e.response.headers.get("Retry-After") or wait)))
            except Exception as e:
                log.warning("coordinator unreachable: %s", e)
            self.stop.wait(wait)
        self.server.stop()
