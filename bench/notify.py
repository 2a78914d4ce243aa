"""Do notifications slow a rollout? On a local stack this script starts and stops (2 regions,
real host daemons), the same deployments run for two projects: one with no subscribers, one
whose subscribers are a webhook that hangs (never answers), a webhook whose port is closed, and
one that answers at once. Each deployment's time from created to COMPLETED is compared, and the
answering subscriber's delay from each event to its delivery is measured.

    .venv/bin/python bench/notify.py [--deploys 10] [--json]

Goal: the project with the hanging and dead subscribers deploys as fast as the quiet one (ratio
of medians about 1), and the live subscriber hears of each event within a second or two (the
notifier polls the events stream every 0.5 s). All traffic goes to 127.0.0.1.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from http_fakes import Subscriber  # noqa: E402

from gantry.auth import issue  # noqa: E402
from gantry.cluster.stack import Stack, free_port  # noqa: E402
from gantry.statuses import BUILD_TERMINAL, BuildStatus, DeploymentStatus as D  # noqa: E402
from sample_repo import commit_build  # noqa: E402

STRATEGY = {"steps": [1, 1.0], "bakeS": 0, "minHealthy": 0.5}
SECRET = "bench-secret-0123456789"


def built(c: httpx.Client, project: str, sha: str) -> str:
    b = c.post(f"/projects/{project}/builds", json={"commitSHA": sha}).json()["buildID"]
    while (rec := c.get(f"/projects/{project}/builds/{b}").json())["buildStatus"] not in BUILD_TERMINAL:
        time.sleep(0.1)
    assert rec["buildStatus"] == BuildStatus.SUCCEEDED, rec
    return b


def deploy_seconds(c: httpx.Client, project: str, build: str) -> float:
    dep = c.post(f"/projects/{project}/deployments", json={"buildID": build, "strategy": STRATEGY}).json()
    while (d := c.get(f"/projects/{project}/deployments/{dep['deploymentID']}").json())["status"] != D.COMPLETED:
        assert d["status"] in (D.IN_PROGRESS, D.QUEUED), d
        time.sleep(0.05)
    return (datetime.fromisoformat(d["updatedAt"]) - datetime.fromisoformat(d["createdAt"])).total_seconds()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--deploys", type=int, default=10, help="per project")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="gantry-bench-notify-"))
    stack = Stack(work / "home")
    stack.up(api_port=free_port(), regions=("us-east", "eu-west"), builders=1, hosts_per_dc=2, say=lambda *_: None)
    live, hanging, dead = Subscriber(), Subscriber(), Subscriber()
    hanging.hang()
    dead.close()
    try:
        cfg = stack.config()
        auth = {"Authorization": "Bearer " + issue(cfg.jwt_secret(), "bench", admin=True)}
        with httpx.Client(base_url=cfg.api_url, verify=cfg.http_verify(), headers=auth, timeout=120) as c:
            subs = [{"url": f"{s.url}/hook", "secret": SECRET} for s in (live, hanging, dead)]
            builds = {}
            for project, notifications in (("quiet", []), ("noisy", subs)):
                c.put(f"/projects/{project}", json={"repoURL": str(work / project),
                                                    "notifications": notifications}).raise_for_status()
                builds[project] = [built(c, project, commit_build(work / project, f"mkdir -p dist && echo {t} > dist/v"))
                                   for t in ("one", "two")]
            seconds = {"quiet": [], "noisy": []}
            for i in range(a.deploys):
                for project in ("quiet", "noisy"):   # interleaved, so both see the same machine
                    seconds[project].append(deploy_seconds(c, project, builds[project][i % 2]))
            time.sleep(2)   # the last events' deliveries
            notices = c.get("/projects/noisy/notifications", params={"limit": 1000}).json()["notices"]
    finally:
        stack.down(say=lambda *_: None)
        live.close()
        hanging.release()
        hanging.close()

    delays = sorted(r["at"] - datetime.fromisoformat(json.loads(r["body"])["at"]).timestamp() for r in live.received)
    pending = {kind: sum(1 for n in notices if n["status"] == "pending" and n["destination"].get("url", "").startswith(
        s.url)) for kind, s in (("hanging", hanging), ("dead", dead))}
    med = {p: statistics.median(v) for p, v in seconds.items()}
    result = {"deploys": a.deploys, "quietMedianS": round(med["quiet"], 2), "noisyMedianS": round(med["noisy"], 2),
              "quietMaxS": round(max(seconds["quiet"]), 2), "noisyMaxS": round(max(seconds["noisy"]), 2),
              "ratio": round(med["noisy"] / med["quiet"], 2), "liveDeliveries": len(delays),
              "deliveryP50S": round(delays[len(delays) // 2], 2) if delays else None,
              "deliveryMaxS": round(delays[-1], 2) if delays else None, "pendingAtEnd": pending}
    print(f"{a.deploys} deployments per project, 2 waves in each of 2 datacenters (2 hosts each), bake 0")
    print(f"no subscribers:                      median {result['quietMedianS']:>6} s   max {result['quietMaxS']:>6} s")
    print(f"hanging + dead + live subscribers:   median {result['noisyMedianS']:>6} s   max {result['noisyMaxS']:>6} s"
          f"   ratio {result['ratio']} (goal: about 1: nothing waits for a subscriber)")
    print(f"live subscriber: {len(delays)} events, delay from event to delivery p50 {result['deliveryP50S']} s, "
          f"max {result['deliveryMaxS']} s; still pending at the end: {pending}")
    if a.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
