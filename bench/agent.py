"""One host agent's own speed, stage by stage, on one core: download from the region's store,
download from a peer, verify, unpack.

    .venv/bin/python bench/agent.py [--size-mb 1024] [--json]

A real `rclone serve s3` store over TLS (the stack's CA) holds an artifact of --size-mb of
random files, published by the build's own `publish`. Then, with the daemon's own parts:
- origin: the `Downloader` (4 workers, as the daemon runs it uncapped) fetches every chunk from the store
  through presigned URLs into an empty `ChunkCache`, each verified as it is written;
- peer: a second cache fetches every chunk from a `PeerServer` over TLS that serves the first;
- verify: every chunk read back from the cache and hashed (BLAKE3), alone (the chunks were just
  written: they are in the page cache, as on a host);
- unpack: `artifacts.unpack.extract` from the cache into a release directory.
Every stage that writes counts until its writes are on disk (`sync`).
Each prints MB/s beside raw `dd` to the same disk and the goal: >= 300 MB/s on one core. CPU
seconds are this process's (the store and the peer server's own work is counted with it for the
peer phase: both are in this process, as they would be on a host that serves while it downloads;
rclone is its own process).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from gantry.artifacts import unpack
from gantry.artifacts.blobstore import S3BlobStore, chunk_key
from gantry.artifacts.chunking import digest_of
from gantry.artifacts.publish import publish
from gantry.cluster.certs import StackCA
from gantry.cluster.services import start_s3
from gantry.cluster.stack import Stack
from gantry.node_daemon.chunkcache import ChunkCache
from gantry.node_daemon.downloader import Downloader
from gantry.node_daemon.peer_server import PeerServer
from gantry.peerauth import PeerAuth
from gantry.settings import Settings
from gantry.tls import client_context, server_context

GOAL = 300e6


def timed(fn, flush: bool = True) -> tuple[float, float]:
    """(wall seconds, this process's CPU seconds) of fn(), with what it wrote flushed to disk
    (`flush`): a figure the page cache flatters is no host's."""
    w, c = time.perf_counter(), time.process_time()
    fn()
    if flush:
        os.sync()
    return time.perf_counter() - w, time.process_time() - c


def dd(path: Path, size: int) -> float:
    """Raw sequential write to the disk, flushed: bytes a second."""
    t0 = time.perf_counter()
    subprocess.run(["dd", "if=/dev/zero", f"of={path}", "bs=4M", f"count={max(1, size >> 22)}", "conv=fdatasync"],
                   check=True, capture_output=True)
    seconds = time.perf_counter() - t0
    path.unlink()
    return (max(1, size >> 22) << 22) / seconds


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mb", type=int, default=1024)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gantry-bench-agent-"))
    stack = Stack(work / "home")
    stack.home.mkdir(parents=True)
    stack.logs.mkdir()
    try:
        ca = StackCA(work / "tls").ensure()
        cert, key = map(str, ca.issue("server", ["127.0.0.1"]))
        region = start_s3(stack, "bench", "benchkey", "benchsecret" * 3, 0, str(ca.ca_file), cert, key)
        store = S3BlobStore(region.s3_endpoint, region.bucket, "benchkey", "benchsecret" * 3, ca_file=str(ca.ca_file))
        out = work / "out"
        out.mkdir()
        left, i = a.size_mb << 20, 0
        while left > 0:   # files of up to 64 MB of random bytes
            n = min(left, 64 << 20)
            (out / f"f{i:03d}").write_bytes(os.urandom(n))
            left, i = left - n, i + 1
        got = {}
        publish_s, _ = timed(lambda: got.update(m=publish(out, store, Settings().chunk_avg_bytes)[0]))
        manifest = got["m"]
        shutil.rmtree(out)
        size = manifest.size

        store_http = httpx.Client(timeout=60, verify=client_context(str(ca.ca_file)))

        def origin_get(digest: str) -> bytes:
            r = store_http.get(store.presign(chunk_key(digest)))
            r.raise_for_status()
            return r.content

        first = ChunkCache(work / "h1" / "cache")
        everything = {c.digest for c in manifest.chunks}
        origin_s, origin_cpu = timed(lambda: Downloader(first, origin_get, lambda wanted, said: ({}, set(wanted)))
                                     .fetch(manifest))

        auth = PeerAuth("k" * 32)
        server = PeerServer(first, auth=auth, tls=server_context(cert, key)).start()
        second = ChunkCache(work / "h2" / "cache")
        peer_http = httpx.Client(timeout=30, verify=client_context(str(ca.ca_file)))
        peer_s, peer_cpu = timed(lambda: Downloader(
            second, origin_get, lambda wanted, said: ({d: [server.address] for d in wanted}, set()),
            credential=lambda: auth.credential("h2"), http=peer_http, scheme="https").fetch(manifest))
        server.stop()
        assert second.held(manifest) == everything, "the peer download is not whole"

        verify_s, verify_cpu = timed(lambda: [digest_of(second.get(c.digest)) for c in manifest.chunks], False)
        unpack_s, unpack_cpu = timed(lambda: unpack.extract((second.get(c.digest) for c in manifest.chunks),
                                                            work / "release"))
        raw_disk = dd(work / "dd", size)
    finally:
        stack.down(say=lambda *_: None)
        shutil.rmtree(work, ignore_errors=True)

    def rate(seconds: float) -> float:
        return round(size / seconds / 1e6, 1)

    res = {"sizeBytes": size, "chunks": len(manifest.chunks), "rawDiskMBps": round(raw_disk / 1e6, 1),
           "publishMBps": rate(publish_s), "originMBps": rate(origin_s), "originCpuS": round(origin_cpu, 1),
           "peerMBps": rate(peer_s), "peerCpuS": round(peer_cpu, 1), "verifyMBps": rate(verify_s),
           "unpackMBps": rate(unpack_s), "unpackCpuS": round(unpack_cpu, 1)}
    print(f"artifact {size / 1e6:.0f} MB in {len(manifest.chunks)} chunks; raw dd to this disk "
          f"{res['rawDiskMBps']} MB/s; publish to the store (the builder's side) {res['publishMBps']} MB/s")
    for what, key, cpu in (("download from the store (TLS, presigned), verified", "originMBps", origin_cpu),
                           ("download from one peer (TLS), verified", "peerMBps", peer_cpu),
                           ("verify alone (read back and BLAKE3)", "verifyMBps", verify_cpu),
                           ("unpack from the cache", "unpackMBps", unpack_cpu)):
        print(f"{what:55s} {res[key]:7.1f} MB/s  ({cpu:.1f} s CPU)   goal >= {GOAL / 1e6:.0f} MB/s on one core")
    if a.json:
        print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
