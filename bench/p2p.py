"""Peer-to-peer distribution inside one datacenter, with real node daemon processes on loopback.

    .venv/bin/python bench/p2p.py --hosts N[,N...] --size-mb S --cap-mbps B [--chunk-kb C]
                                  [--skip-origin-only] [--json]

A one-region stack whose blob store (the origin) is capped at B MB/s (`rclone --bwlimit`); N
`gantry-node` processes each capped at B MB/s up and down. One artifact of S MB of
incompressible data is built, then deployed to all N hosts at once (one wave, no bake): first
with peer-to-peer, then (unless --skip-origin-only) with every host fetching from the origin
only. Reported beside the bound S/B + (ceil(log2 N) - 1) * c/B, c the average chunk size.
Goal: p2p within 1.25x of the bound. Also reported: originBytes / sizeBytes (what the origin
sent, over the artifact; goal <= 1.1) and firstChunkSeconds (from the POST to the first host's
first chunk request; goal <= 1 s). Where the time goes: downloadTailSeconds (the last host's
download done after the median host's) and stagedToActiveSeconds (from the last download done
to the deployment COMPLETED: activations, reports and the coordinator's loop). What else binds:
agentCpuSeconds (the median host agent's CPU while it downloaded, its `lastDownload`) and
machineIdle (the whole machine's idle share during the rollout; all hosts share its cores).
With --json the last line is the result for the largest N.
"""
from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path

import httpx

from gantry.artifacts.blobstore import manifest_key, s3_for
from gantry.artifacts.manifest import Manifest
from gantry.cluster.stack import Stack, free_port
from gantry.auth import issue
from gantry.state import State
from gantry.statuses import BUILD_TERMINAL, DEPLOYMENT_ACTIVE, BuildStatus, DeploymentStatus, HostState
from procstat import machine_times
from sample_repo import commit_build

REGION, DC = "bench", "bench-a"


def wait(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.2)


def rollout(stack: Stack, api: httpx.Client, project: str, build_id: str, n: int, cap: float, peers: bool,
            tag: str) -> dict:
    hosts = [f"{DC}-{tag}-{i}" for i in range(n)]
    for h in hosts:
        stack.start_host(h, REGION, DC, max_up_mbps=cap, max_down_mbps=cap, peers=peers, projects=[project])
    wait(lambda: sum(1 for h in api.get(f"/projects/{project}/hosts").json()
                     if h["hostID"] in hosts and h["state"] != HostState.LOST) == n, 120, f"{n} hosts to register")
    t0, posted, cpu0 = time.monotonic(), time.time(), machine_times()
    dep = api.post(f"/projects/{project}/deployments", json={
        "buildID": build_id, "strategy": {"steps": [1.0], "minHealthy": 1.0, "bakeS": 0}}).json()["deploymentID"]
    d = wait(lambda: (lambda d: d if d["status"] not in DEPLOYMENT_ACTIVE else None)(
        api.get(f"/projects/{project}/deployments/{dep}").json()), 3600, "the rollout")
    seconds, cpu1 = time.monotonic() - t0, machine_times()
    if d["status"] != DeploymentStatus.COMPLETED:
        errors = {h["hostID"]: h["error"] for h in api.get(f"/projects/{project}/hosts").json() if h["error"]}
        raise SystemExit(f"deployment ended {d['status']}: {d['reason']}; host errors: {errors}")
    state = State(stack.config().redis_url)
    downloads = [json.loads(state.hosts.get(DC, h).get("lastDownload") or "{}") for h in hosts]
    for h in hosts:
        stack.stop_process(f"host-{h}")
    time.sleep(35)  # let the coordinator mark them lost before the next run (30 s: three idle reports)
    timed = [d for d in downloads if "startedAt" in d]
    done = sorted(d["startedAt"] + d["seconds"] - posted for d in timed)
    return {"seconds": seconds, "originBytes": sum(d.get("bytesFromOrigin", 0) for d in downloads),
            "firstChunkSeconds": min(d["startedAt"] for d in timed) - posted,
            "downloadedSeconds": done[-1], "medianDownloadedSeconds": done[len(done) // 2],
            "machineIdle": (cpu1[0] - cpu0[0]) / max(1, cpu1[1] - cpu0[1]),
            "agentCpuSeconds": sorted(d.get("cpuSeconds", 0) for d in timed)[len(timed) // 2]}


def arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--hosts", default="8,16,32", help="comma-separated host counts")
    ap.add_argument("--size-mb", type=float, default=32)
    ap.add_argument("--cap-mbps", type=float, default=5)
    ap.add_argument("--chunk-kb", type=int, default=512, help="FastCDC average (chunks average ~1.25x this)")
    ap.add_argument("--skip-origin-only", action="store_true")
    ap.add_argument("--json", action="store_true")


def main() -> int:
    ap = argparse.ArgumentParser()
    arguments(ap)
    a = ap.parse_args()
    results = measure(a)
    if a.json and results:
        print(json.dumps(results[-1]))
    return 0


def measure(a, probe=None) -> list[dict]:
    """Each host count's rollout; `probe(stack, cfg)` is called once the stack is up."""
    size = int(a.size_mb * 1e6)
    counts = [int(x) for x in a.hosts.split(",")]

    import os
    os.environ.update(GANTRY_CHUNK_AVG_BYTES=str(a.chunk_kb << 10), GANTRY_HOST_LOST_S="30")
    work = Path(tempfile.mkdtemp(prefix="gantry-bench-p2p-"))
    stack = Stack(work / "home")
    cfg = stack.up(api_port=free_port(), regions=(REGION,), builders=1, hosts_per_dc=0,
                   s3_bwlimit_mbps=a.cap_mbps, say=lambda *_: None)
    results = []
    try:
        if probe:
            probe(stack, cfg)
        token = issue(cfg.jwt_secret(), "bench", admin=True)
        with httpx.Client(base_url=cfg.api_url, verify=cfg.http_verify(), headers={"Authorization": f"Bearer {token}"}, timeout=60) as api:
            sha = commit_build(work / "repo", f"mkdir -p dist && head -c {size} /dev/urandom > dist/blob")
            cap = a.cap_mbps * 1e6

            def build(project: str) -> tuple[str, Manifest]:
                """Each rollout has its own project, build (random data) and hosts: a host that
                registers where the desired build is already set would start on it at once."""
                api.put(f"/projects/{project}", json={"repoURL": str(work / "repo")}).raise_for_status()
                b = api.post(f"/projects/{project}/builds", json={"commitSHA": sha}).json()["buildID"]
                rec = wait(lambda: (lambda r: r if r["buildStatus"] in BUILD_TERMINAL else None)(
                    api.get(f"/projects/{project}/builds/{b}").json()), 1800, "the build")
                if rec["buildStatus"] != BuildStatus.SUCCEEDED:
                    raise SystemExit(f"build failed: {rec['error']}")
                return b, Manifest.from_bytes(s3_for(cfg.primary, cfg.s3_access_key, cfg.s3_secret_key)
                                              .get(manifest_key(rec["artifact"]["digest"])))

            for n in counts:
                b, manifest = build(f"bench-p{n}")
                chunk = manifest.size / len(manifest.chunks)
                bound = manifest.size / cap + (math.ceil(math.log2(n)) - 1) * chunk / cap
                p2p = rollout(stack, api, f"bench-p{n}", b, n, a.cap_mbps, True, f"p{n}")
                origin = None if a.skip_origin_only else rollout(
                    stack, api, f"bench-o{n}", build(f"bench-o{n}")[0], n, a.cap_mbps, False, f"o{n}")["seconds"]
                r = {"hosts": n, "sizeBytes": manifest.size, "capBytesPerS": cap, "chunkBytes": round(chunk),
                     "p2pSeconds": round(p2p["seconds"], 2),
                     "originOnlySeconds": round(origin, 2) if origin is not None else None,
                     "boundSeconds": round(bound, 2), "originBytes": p2p["originBytes"],
                     "firstChunkSeconds": round(p2p["firstChunkSeconds"], 3),
                     "downloadedSeconds": round(p2p["downloadedSeconds"], 2),
                     # the download tail: the last host's download done after the median host's
                     "downloadTailSeconds": round(p2p["downloadedSeconds"] - p2p["medianDownloadedSeconds"], 2),
                     # from the last download done to the deployment COMPLETED (activation, reports, the loop)
                     "stagedToActiveSeconds": round(p2p["seconds"] - p2p["downloadedSeconds"], 2),
                     # one host agent's CPU while it downloaded (the median host): 32 agents share 2 cores here
                     "agentCpuSeconds": p2p["agentCpuSeconds"],
                     # the machine's idle share during the rollout: near 0, the hosts' CPU binds, not their caps
                     "machineIdle": round(p2p["machineIdle"], 3)}
                results.append(r)
                print(f"N={n:3d}  p2p {p2p['seconds']:7.1f} s   bound {bound:6.1f} s   "
                      f"p2p/bound {p2p['seconds'] / bound:.2f} (goal <= 1.25)   "
                      f"origin/size {p2p['originBytes'] / manifest.size:.2f} (goal <= 1.1)   "
                      f"first chunk {p2p['firstChunkSeconds']:.2f} s (goal <= 1)   "
                      f"downloads done: median {p2p['medianDownloadedSeconds']:.1f} s, last "
                      f"{p2p['downloadedSeconds']:.1f} s; then active {r['stagedToActiveSeconds']:.1f} s later   "
                      f"agent CPU {r['agentCpuSeconds']:.1f} s (median host), machine idle {r['machineIdle']:.0%}   "
                      + (f"origin-only {origin:7.1f} s   " if origin is not None else "")
                      + f"[S={manifest.size / 1e6:.0f} MB, B={a.cap_mbps:g} MB/s, c={chunk / 1e6:.2f} MB]", flush=True)
    finally:
        stack.down(say=lambda *_: None)
        shutil.rmtree(work, ignore_errors=True)
    return results


if __name__ == "__main__":
    sys.exit(main())
