"""How fast a deploy and a rollback answer when the project has a large fleet, on a local stack
this script starts and stops.

    .venv/bin/python bench/rollback.py [--hosts 10000] [--requests 40] [--json]

The fleet is simulated: `--hosts` host records serving the project, spread over the stack's
datacenters, written to Redis the way the host gateway writes reports (no daemons run, so the
coordinators see them all, then mark them lost). Two real builds are built. Then, one request at
a time: `POST /rollback` (alternating between the two builds: each supersedes the last),
`POST /deployments` (created first, predicted afterwards off the request path) and
`POST /deployments?dryRun=true` (a bounded, sampled simulation of the whole fleet). Goal: rollback
p99 under 300 ms. All traffic goes to 127.0.0.1. With --json the last line is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from gantry.auth import issue
from gantry.cluster.stack import Stack, free_port
from gantry.state import State, keys
from gantry.statuses import BUILD_TERMINAL, BuildStatus
from sample_repo import commit_build

GOAL_ROLLBACK_P99_MS = 300


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def fleet(state: State, dcs: list[tuple[str, str]], n: int) -> None:
    """Write the host records (again: a refresh keeps them from being marked lost)."""
    now = state.clock()
    with state.r.pipeline(transaction=False) as p:
        for i in range(n):
            region, dc = dcs[i % len(dcs)]
            host = f"sim-{i:06d}"
            p.sadd(keys.hosts(dc), host)
            p.hset(keys.host(dc, host), mapping={"hostID": host, "region": region, "dc": dc, "serves": "*",
                                                 "address": f"127.0.0.9:{1024 + i % 60000}", "updatedAt": now})
            p.hdel(keys.host(dc, host), "lostAt", "lost")
            if i % 5000 == 4999:
                p.execute()
        p.execute()
    for region, dc in dcs:   # written straight into Redis: the coordinators are told to read them again
        state.hosts.touched(dc, [f"sim-{i:06d}" for i in range(n) if dcs[i % len(dcs)] == (region, dc)])


def keep_alive(state: State, dcs: list[tuple[str, str]], n: int, stop: threading.Event) -> None:
    while not stop.wait(5):   # as their reports would (hosts are lost after 15 s of silence)
        fleet(state, dcs, n)


def timed(c: httpx.Client, method: str, url: str, **kw) -> tuple[float, httpx.Response]:
    t0 = time.perf_counter()
    r = c.request(method, url, **kw)
    return time.perf_counter() - t0, r


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts", type=int, default=10_000)
    ap.add_argument("--requests", type=int, default=40, help="of each kind (dry runs: a quarter as many)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="gantry-bench-rollback-"))
    stack = Stack(work / "home")
    stack.up(api_port=free_port(), regions=("us-east", "eu-west"), builders=1, hosts_per_dc=0, say=lambda *_: None)
    try:
        cfg = stack.config()
        auth = {"Authorization": "Bearer " + issue(cfg.jwt_secret(), "bench", admin=True)}
        with httpx.Client(base_url=cfg.api_url, verify=cfg.http_verify(), headers=auth, timeout=120) as c:
            c.put("/projects/bench", json={"repoURL": str(work / "repo")}).raise_for_status()
            builds = []
            for text in ("one", "two"):
                sha = commit_build(work / "repo", f"mkdir -p dist && echo {text} > dist/v")
                b = c.post("/projects/bench/builds", json={"commitSHA": sha}).json()["buildID"]
                while (rec := c.get(f"/projects/bench/builds/{b}").json())["buildStatus"] not in BUILD_TERMINAL:
                    time.sleep(0.1)
                assert rec["buildStatus"] == BuildStatus.SUCCEEDED, rec
                builds.append(b)
            state = State(cfg.redis_url)
            dcs = [(r.name, dc) for r in cfg.regions for dc in r.datacenters]
            fleet(state, dcs, a.hosts)
            stop = threading.Event()
            threading.Thread(target=keep_alive, args=(state, dcs, a.hosts, stop), daemon=True).start()
            rollbacks, deploys, dry = [], [], []
            for i in range(a.requests):
                s, r = timed(c, "POST", "/projects/bench/rollback", json={"buildID": builds[i % 2]})
                assert r.status_code == 202, r.text
                rollbacks.append(s)
                s, r = timed(c, "POST", "/projects/bench/deployments", json={"buildID": builds[(i + 1) % 2]})
                assert r.status_code == 202, r.text
                deploys.append(s)
            for _ in range(max(1, a.requests // 4)):
                s, r = timed(c, "POST", "/projects/bench/deployments", params={"dryRun": "true"},
                             json={"buildID": builds[0]})
                assert r.status_code == 200, r.text
                dry.append(s)
            sampled = r.json()["assumptions"].get("sampled")   # .get: the same bench runs on older code
            stop.set()
    finally:
        stack.down(say=lambda *_: None)

    ms = lambda v: round(v * 1000, 1)   # noqa: E731
    result = {"hosts": a.hosts, "rollbackP50Ms": ms(pct(rollbacks, 50)), "rollbackP99Ms": ms(pct(rollbacks, 99)),
              "deployP50Ms": ms(pct(deploys, 50)), "deployP99Ms": ms(pct(deploys, 99)),
              "dryRunP50Ms": ms(pct(dry, 50)), "dryRunMaxMs": ms(max(dry)),
              "dryRunSampledHosts": (sampled or {}).get("hosts", a.hosts)}
    print(f"{a.hosts} simulated hosts in {sum(len(r.datacenters) for r in cfg.regions)} datacenters")
    print(f"POST /rollback                 p50 {result['rollbackP50Ms']:>7} ms   p99 {result['rollbackP99Ms']:>7} ms"
          f"   (goal: p99 < {GOAL_ROLLBACK_P99_MS} ms; never predicted)")
    print(f"POST /deployments              p50 {result['deployP50Ms']:>7} ms   p99 {result['deployP99Ms']:>7} ms"
          f"   (predicted afterwards, off the request path)")
    print(f"POST /deployments?dryRun=true  p50 {result['dryRunP50Ms']:>7} ms   max {result['dryRunMaxMs']:>7} ms"
          f"   (the simulation of {result['dryRunSampledHosts']} hosts sampled from {a.hosts})")
    if a.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
