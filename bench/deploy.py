"""How long a default-strategy deployment takes on the local stack, against the same deployment
with the strategy as it was before stage-then-activate (issue 13).

    .venv/bin/python bench/deploy.py [--hosts-per-dc 4] [--bake 30] [--json]

A stack of 3 regions (one datacenter each, `--hosts-per-dc` hosts) this script starts and
stops. A small build (the demo's size) is deployed twice, to the same hosts:
- "default": no strategy given, so canary, 10%, 50%, 100% with a `--bake` s bake, staged on
  every host first, then region waves: the first region alone, then the other two together;
- "before": the same steps and bake with `stage: "wave"` and one region per region wave, which
  is what the default was before: each wave downloads, regions strictly one after another.
Each figure is from the POST to COMPLETED, beside the number of bakes on its critical path.
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

from gantry.auth import issue
from gantry.cluster.stack import Stack, free_port
from gantry.statuses import DEPLOYMENT_ACTIVE, BuildStatus, DeploymentStatus, HostState
from sample_repo import commit_build

REGIONS = ("us-east", "eu-west", "ap-south")
STEPS = (1, 0.1, 0.5, 1.0)


def waves_per_dc(hosts: int) -> int:
    cumulative = sorted({min(hosts, s if isinstance(s, int) else math.ceil(s * hosts)) for s in STEPS})
    return len(cumulative)


def wait(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.3)
    return value


def deploy_seconds(api: httpx.Client, build_id: str, strategy: dict | None) -> float:
    t0 = time.monotonic()
    r = api.post("/projects/bench/deployments", json={"buildID": build_id, **({"strategy": strategy} if strategy else {})})
    r.raise_for_status()
    dep = r.json()["deploymentID"]
    d = wait(lambda: (lambda d: d if d["status"] not in DEPLOYMENT_ACTIVE else None)(
        api.get(f"/projects/bench/deployments/{dep}").json()), 1800, "the deployment")
    if d["status"] != DeploymentStatus.COMPLETED:
        raise SystemExit(f"deployment ended {d['status']}: {d['reason']}")
    return time.monotonic() - t0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts-per-dc", type=int, default=4)
    ap.add_argument("--bake", type=float, default=30)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gantry-bench-deploy-"))
    stack = Stack(work / "home")
    cfg = stack.up(api_port=free_port(), regions=REGIONS, builders=1, hosts_per_dc=a.hosts_per_dc, say=lambda *_: None)
    try:
        token = issue(cfg.jwt_secret(), "bench", admin=True)
        with httpx.Client(base_url=cfg.api_url, verify=cfg.http_verify(), headers={"Authorization": f"Bearer {token}"}, timeout=60) as api:
            api.put("/projects/bench", json={"repoURL": str(work / "repo")}).raise_for_status()
            builds = []
            for n in (1, 2):
                sha = commit_build(work / "repo", f"mkdir -p dist && head -c 10000 /dev/urandom > dist/app{n}")
                b = api.post("/projects/bench/builds", json={"commitSHA": sha}).json()["buildID"]
                wait(lambda: api.get(f"/projects/bench/builds/{b}").json()["buildStatus"] == BuildStatus.SUCCEEDED, 900, "a build")
                builds.append(b)
            wait(lambda: sum(1 for h in api.get("/projects/bench/hosts").json() if h["state"] != HostState.LOST)
                 == a.hosts_per_dc * len(REGIONS), 120, "the hosts")
            before = deploy_seconds(api, builds[0], {"steps": list(STEPS), "bakeS": a.bake, "stage": "wave",
                                                     "regionWaves": [[r] for r in REGIONS]})
            default = deploy_seconds(api, builds[1], None)
    finally:
        stack.down(say=lambda *_: None)
        shutil.rmtree(work, ignore_errors=True)
    w = waves_per_dc(a.hosts_per_dc)
    out = {"regions": len(REGIONS), "hostsPerRegion": a.hosts_per_dc, "bakeS": a.bake,
           "beforeSeconds": round(before, 1), "beforeBakes": w * len(REGIONS),
           "defaultSeconds": round(default, 1), "defaultBakes": w * 2}
    print(f"before (stage per wave, one region after another): {before:6.1f} s  ({w} bakes x {len(REGIONS)} regions)")
    print(f"default (stage all, then 2 region waves):          {default:6.1f} s  ({w} bakes x 2 region waves)")
    if a.json:
        print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
