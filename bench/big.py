"""A multi-GB artifact end to end, for real: built, replicated to a second region, deployed to 4
hosts, on a local stack this script starts and stops (2 regions, 1 builder, 2 hosts a region).

    .venv/bin/python bench/big.py [--gb 4] [--json]

The build writes --gb GB of incompressible data (`head -c ... /dev/urandom`), so no stage is
flattered by compression or deduplication. Each stage's throughput is printed beside raw `dd` to
this disk and a raw S3 PUT of 1 GB (boto3 multipart) to the same store:
- build: POST to SUCCEEDED (writing the data, packing, chunking, hashing, uploading);
- replication: the primary's row to the second region's REPLICATED;
- deploy: POST to COMPLETED (one wave, no bake), and each host's download.
Every process's RSS is sampled each second; what grew most is printed. Goal: no process but the
raylet grows by more than 1 GB (nothing holds a whole artifact, or a region's copy, in memory).
It needs about 11x the artifact in free disk (the builder's output, two stores, four hosts'
caches and releases) and says so before it starts if that is not there.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from gantry.artifacts.blobstore import s3_for
from gantry.auth import issue
from gantry.cluster.stack import Stack, free_port
from gantry.state import State
from gantry.statuses import BUILD_TERMINAL, DEPLOYMENT_ACTIVE, BuildStatus, DeploymentStatus, ReplicationStatus
from sample_repo import commit_build

ROOM = 11   # the artifact's size this many times over, free on disk


def ts(iso: str) -> float:
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


class RssSampler(threading.Thread):
    """The RSS of every process this script started (and theirs) each second:
    pid -> [command, first seen, largest]."""

    def __init__(self):
        super().__init__(daemon=True)
        self.seen: dict[str, list] = {}
        self.stopped = threading.Event()

    def run(self) -> None:
        me = os.getpid()
        while not self.stopped.wait(1.0):
            parent = {}
            for pid in filter(str.isdigit, os.listdir("/proc")):
                try:
                    with open(f"/proc/{pid}/stat") as f:
                        parent[int(pid)] = int(f.read().rsplit(")", 1)[1].split()[1])
                except (OSError, ValueError, IndexError):
                    continue
            for pid in parent:
                up = parent.get(pid)
                while up not in (None, 0, 1, me):   # only what this script started: the stack and its workers
                    up = parent.get(up)
                if up != me:
                    continue
                try:
                    with open(f"/proc/{pid}/status") as f:
                        rss = next((int(x.split()[1]) << 10 for x in f if x.startswith("VmRSS")), 0)
                    cmd = open(f"/proc/{pid}/cmdline").read().replace("\0", " ").strip()[:100]
                except (OSError, ValueError):
                    continue
                if "big.py" in cmd:   # a fork of this script on its way to exec (git, dd)
                    continue
                row = self.seen.setdefault(str(pid), [cmd, rss, rss])
                row[2] = max(row[2], rss)

    def growth(self) -> list[tuple[int, int, str]]:
        """(grown by, largest, command), most grown first."""
        return sorted(((big - first, big, cmd) for cmd, first, big in self.seen.values()), reverse=True)


def wait(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while (value := predicate()) is None:
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.5)
    return value


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gb", type=float, default=4)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    size = int(a.gb * 1e9)
    work = Path(tempfile.mkdtemp(prefix="gantry-bench-big-"))
    free = shutil.disk_usage(work).free
    if free < ROOM * size:
        shutil.rmtree(work)
        raise SystemExit(f"{a.gb:g} GB needs about {ROOM * size / 1e9:.0f} GB free under {work.parent} "
                         f"(the builder's output, two stores, four hosts' caches and releases); {free / 1e9:.0f} GB is")
    t0 = time.perf_counter()
    subprocess.run(["dd", "if=/dev/zero", f"of={work / 'dd'}", "bs=4M", f"count={size >> 22}", "conv=fdatasync"],
                   check=True, capture_output=True)
    raw_disk = (size >> 22 << 22) / (time.perf_counter() - t0)
    (work / "dd").unlink()
    sampler = RssSampler()
    sampler.start()
    stack = Stack(work / "home")
    cfg = stack.up(api_port=free_port(), regions=("us-east", "eu-west"), builders=1, hosts_per_dc=2,
                   say=lambda *_: None)
    try:
        primary = s3_for(cfg.primary, cfg.s3_access_key, cfg.s3_secret_key)
        with open(work / "raw.bin", "wb") as f:
            for _ in range(16):
                f.write(os.urandom(64 << 20))
        t0 = time.perf_counter()
        primary.put_file("bench/raw.bin", work / "raw.bin")
        raw_put = (1 << 30) / (time.perf_counter() - t0)
        primary.delete(["bench/raw.bin"])
        (work / "raw.bin").unlink()

        sha = commit_build(work / "repo", f"mkdir -p dist && head -c {size} /dev/urandom > dist/blob", 3600)
        token = issue(cfg.jwt_secret(), "bench", admin=True)
        with httpx.Client(base_url=cfg.api_url, verify=cfg.http_verify(), headers={"Authorization": f"Bearer {token}"},
                          timeout=60) as api:
            api.put("/projects/big", json={"repoURL": str(work / "repo")}).raise_for_status()
            b = api.post("/projects/big/builds", json={"commitSHA": sha}).json()["buildID"]

            def record():
                rec = api.get(f"/projects/big/builds/{b}").json()
                return rec if rec["buildStatus"] in BUILD_TERMINAL else None
            rec = wait(record, 3600, "the build")
            if rec["buildStatus"] != BuildStatus.SUCCEEDED:
                raise SystemExit(f"build ended {rec['buildStatus']}: {rec['error']}")
            build_s = ts(rec["finishedAt"]) - ts(rec["createdAt"])

            def replicated():
                rows = {r["region"]: r for r in api.get(f"/projects/big/builds/{b}").json()["replication"]}
                return rows if rows.get("eu-west", {}).get("replicationStatus") == ReplicationStatus.REPLICATED else None
            rows = wait(replicated, 3600, "the replica in eu-west")
            replication_s = ts(rows["eu-west"]["updatedAt"]) - ts(rows["us-east"]["updatedAt"])

            t0, posted = time.monotonic(), time.time()
            dep = api.post("/projects/big/deployments", json={
                "buildID": b, "strategy": {"steps": [1.0], "minHealthy": 1.0, "bakeS": 0}}).json()["deploymentID"]
            d = wait(lambda: (lambda d: d if d["status"] not in DEPLOYMENT_ACTIVE else None)(
                api.get(f"/projects/big/deployments/{dep}").json()), 3600, "the deployment")
            deploy_s = time.monotonic() - t0
            if d["status"] != DeploymentStatus.COMPLETED:
                raise SystemExit(f"deployment ended {d['status']}: {d['reason']}")
        state = State(cfg.redis_url)
        downloads = [json.loads(state.hosts.get(dc, h).get("lastDownload") or "{}")
                     for dc in ("us-east-a", "eu-west-a") for h in stack.hosts() if h.startswith(dc)]
    finally:
        stack.down(say=lambda *_: None)
        sampler.stopped.set()
        shutil.rmtree(work, ignore_errors=True)

    grown = sampler.growth()
    over = [(g, cmd) for g, _, cmd in grown if g > 1e9 and "raylet" not in cmd]
    mbps = lambda seconds: round(size / seconds / 1e6, 1)
    res = {"sizeBytes": size, "rawDiskMBps": round(raw_disk / 1e6, 1), "rawS3PutMBps": round(raw_put / 1e6, 1),
           "buildSeconds": round(build_s, 1), "buildMBps": mbps(build_s),
           "replicationSeconds": round(replication_s, 1), "replicationMBps": mbps(replication_s),
           "deploySeconds": round(deploy_s, 1), "deployMBps": mbps(deploy_s),
           "hostDownloadMBps": [mbps(x["seconds"]) for x in downloads if x.get("seconds")],
           "hostBytesFromPeers": [x.get("bytesFromPeers", 0) for x in downloads],
           "largestRssGrowthBytes": [[g, cmd] for g, _, cmd in grown[:6]], "overOneGB": over}
    print(f"{size / 1e9:g} GB incompressible; raw dd {res['rawDiskMBps']} MB/s, raw S3 PUT (1 GB, multipart) "
          f"{res['rawS3PutMBps']} MB/s")
    print(f"build (POST to SUCCEEDED)          {build_s:7.1f} s  {res['buildMBps']:7.1f} MB/s")
    print(f"replication to eu-west             {replication_s:7.1f} s  {res['replicationMBps']:7.1f} MB/s")
    print(f"deploy to 4 hosts (POST to COMPLETED) {deploy_s:5.1f} s  {res['deployMBps']:7.1f} MB/s; each host's "
          f"download {res['hostDownloadMBps']} MB/s, from peers {[round(x / 1e9, 2) for x in res['hostBytesFromPeers']]} GB")
    print("largest RSS growth: " + "; ".join(f"{g / 2**20:.0f} MiB {cmd[:60]}" for g, _, cmd in grown[:6]))
    print(f"goal: no process but the raylet grows by > 1 GB: {'met' if not over else f'MISSED by {over}'}")
    if a.json:
        print(json.dumps(res))
    return 0 if not over else 1


if __name__ == "__main__":
    sys.exit(main())
