"""Artifact publish and replication throughput, memory and delta, on a local stack this script
starts and stops (3 regions or --regions, 1 builder, default settings).

    .venv/bin/python bench/replication.py [--size-mb N] [--json]

Figures, each beside what it is compared to:
- packUploadBytesPerS: pack + chunk + hash + upload of N MB of incompressible data to the primary
  store (in this process, the same code a build runs), against rawPutBytesPerS: one boto3
  multipart upload of the same bytes to the same server. Goal: >= 0.8 of raw.
- replicationBytesPerS: the slowest region's replication of a real build (from the artifact's
  publication to the region's REPLICATED), all regions at once, against rawCopyBytesPerS: the
  slowest of streaming boto3 GETs from the primary into PUTs to each region, also all at once.
  Goal: >= 0.85 of raw (issue 27).
- peakRssBytes: the largest peak RSS of the build worker (recorded by the build) and the region
  replicators.
- deltaBytesMoved: bytes a region received for a rebuild that changes 1% of the data.
  Goal: <= 3% of the artifact.
- cpu: during the raw copy and during the replication, each kind of process's CPU seconds and
  the machine's idle share (bench/procstat.py): on a small machine, what the copy competes with.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
import time
from pathlib import Path

import httpx
import ray

from gantry.constants import NAMESPACE, replicator_name
from gantry.state import State
from gantry.artifacts.blobstore import s3_for
from gantry.artifacts.publish import publish
from gantry.cluster.stack import Stack, free_port
from gantry.settings import Settings
from gantry.auth import issue
from gantry.statuses import BUILD_TERMINAL, BuildStatus
from procstat import CpuSampler
from sample_repo import commit_build

PIECE = 16 << 20
GEN = """import os, random, sys
size, variant = int(sys.argv[1]), int(sys.argv[2])
os.makedirs("dist", exist_ok=True)
with open("dist/blob", "wb") as f:
    for i in range(0, size, %d):
        f.write(random.Random(i).randbytes(min(%d, size - i)))
    if variant:  # overwrite 1%% of the data in the middle
        f.seek(size // 2)
        f.write(random.Random(-variant).randbytes(size // 100))
""" % (PIECE, PIECE)


def ts(iso: str) -> float:
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def build(api: httpx.Client, sha: str) -> dict:
    b = api.post("/projects/bench/builds", json={"commitSHA": sha}).json()["buildID"]
    while True:
        rec = api.get(f"/projects/bench/builds/{b}").json()
        if rec["buildStatus"] in BUILD_TERMINAL:
            if rec["buildStatus"] != BuildStatus.SUCCEEDED:
                raise SystemExit(f"build {b} ended {rec['buildStatus']}: {rec['error']}")
            return rec
        time.sleep(0.5)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mb", type=int, default=256)
    ap.add_argument("--regions", type=int, default=3, help="regions in the stack (the first is the primary)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    size = a.size_mb << 20
    settings = Settings()

    work = Path(tempfile.mkdtemp(prefix="gantry-bench-repl-"))
    stack = Stack(work / "home")
    names = ("us-east", "eu-west", "ap-south", *(f"r{i}" for i in range(3, a.regions)))[:a.regions]
    cfg = stack.up(api_port=free_port(), regions=names, builders=1,   # no hosts past 3 regions: the machine is small
                   hosts_per_dc=0 if a.regions > 3 else None, say=lambda *_: None)
    try:
        keys = (cfg.s3_access_key, cfg.s3_secret_key)
        primary = s3_for(cfg.primary, *keys)
        out = work / "out"
        out.mkdir()
        with open(out / "blob", "wb") as f:
            for i in range(0, size, PIECE):
                f.write(os.urandom(min(PIECE, size - i)))

        t0 = time.perf_counter()
        primary.put_file("bench/raw.bin", out / "blob")
        raw_put = size / (time.perf_counter() - t0)

        t0 = time.perf_counter()
        manifest, _ = publish(out, primary, settings.chunk_avg_bytes, settings.upload_concurrency)
        pack_upload = manifest.size / (time.perf_counter() - t0)

        def raw_copy_to(region) -> float:
            target = s3_for(region, *keys)
            t0 = time.perf_counter()
            body = primary.s3.get_object(Bucket=primary.bucket, Key="bench/raw.bin")["Body"]
            target.s3.upload_fileobj(body, target.bucket, "bench/raw.bin", Config=target.transfer)
            return size / (time.perf_counter() - t0)

        sampler = CpuSampler().start()
        # every region at once, as replication runs
        raw_window = [time.time()]
        with ThreadPoolExecutor(len(cfg.regions) - 1) as pool:
            raw_copy = list(pool.map(raw_copy_to, cfg.regions[1:]))
        raw_window.append(time.time())

        # the data, then the same data with 1% changed
        shas = [commit_build(work / "repo", f"python3 gen.py {size} {variant}", 1800, {"gen.py": GEN})
                for variant in (0, 1)]
        token = issue(cfg.jwt_secret(), "bench", admin=True)
        with httpx.Client(base_url=cfg.api_url, verify=cfg.http_verify(), headers={"Authorization": f"Bearer {token}"}, timeout=60) as api:
            api.put("/projects/bench", json={"repoURL": str(work / "repo")}).raise_for_status()
            first = build(api, shas[0])
            second = build(api, shas[1])
        sampler.stop()
        rows = [r for r in first["replication"] if r["region"] != cfg.primary.name]
        published_at = max(ts(r["updatedAt"]) for r in first["replication"] if r["region"] == cfg.primary.name)
        replication = [r["bytesTransferred"] / (ts(r["updatedAt"]) - published_at) for r in rows]
        cpu = {"rawCopy": sampler.between(*raw_window),
               "replication": sampler.between(published_at, max(ts(r["updatedAt"]) for r in rows))}
        delta = max(r["bytesTransferred"] for r in second["replication"] if r["region"] != cfg.primary.name)

        stack.connect()
        rss = [int(State(cfg.redis_url).builds.get(first["buildID"]).get("workerPeakRssBytes") or 0)]
        rss += [ray.get(ray.get_actor(replicator_name(r.name), namespace=NAMESPACE).peak_rss_bytes.remote())
                for r in cfg.regions[1:]]
    finally:
        stack.down(say=lambda *_: None)
        shutil.rmtree(work, ignore_errors=True)

    result = {"sizeBytes": size, "regions": len(cfg.regions),
              "landedSeconds": {r["region"]: round(ts(r["updatedAt"]) - published_at, 1) for r in rows},
              "sources": {r["region"]: r.get("source") for r in rows}, "packUploadBytesPerS": round(pack_upload), "rawPutBytesPerS": round(raw_put),
              "replicationBytesPerS": round(min(replication)), "rawCopyBytesPerS": round(min(raw_copy)),
              "deltaBytesMoved": delta, "peakRssBytes": max(rss), "cpu": cpu}
    mb = lambda v: f"{v / 1e6:8.1f} MB/s"
    print(f"artifact                {size / 2**20:.0f} MiB incompressible, chunks avg ~{settings.chunk_avg_bytes * 5 // 4 >> 20} MiB")
    print(f"pack+chunk+hash+upload  {mb(pack_upload)}   raw PUT {mb(raw_put)}   ratio {pack_upload / raw_put:.2f} (goal >= 0.8)")
    print(f"replication (slowest)   {mb(min(replication))}   raw copy {mb(min(raw_copy))}   "
          f"ratio {min(replication) / min(raw_copy):.2f} (goal >= 0.85, issue 27); per region: "
          + ", ".join(f"{r['region']} {x / 1e6:.1f}" for r, x in zip(rows, replication)))
    print("each region's copy (replication is a tree, fanout "
          f"{settings.replication_fanout}): " + ", ".join(
              f"{r['region']} from {r.get('source') or '?'} at {ts(r['updatedAt']) - published_at:.1f} s" for r in rows))
    print(f"delta for a 1% change   {delta / 2**20:.2f} MiB = {100 * delta / size:.2f}% of the artifact (goal <= 3%)")
    print(f"peak RSS                {max(rss) / 2**20:.0f} MiB (build worker {rss[0] / 2**20:.0f} MiB, "
          f"replicators {', '.join(f'{x / 2**20:.0f}' for x in rss[1:])} MiB)")
    for phase, c in cpu.items():
        top = ", ".join(f"{name} {secs:.1f}" for name, secs in list(c["cpuSeconds"].items())[:6])
        print(f"CPU during {phase:<12} {c['seconds']:.1f} s, machine {c['machineIdle']:.0%} idle; CPU s: {top}")
    if a.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
