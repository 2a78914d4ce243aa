"""Chaos on the real stack: the scheduler and a coordinator killed while builds run and a
deployment rolls out. What must hold: every build SUCCEEDS exactly once, the deployment
COMPLETES on every live host, and the scheduler has nothing left in flight. (The review's chaos
run found this held; the test keeps it so.)"""
import time

import ray

from gantry.constants import NAMESPACE, SCHEDULER, coordinator_name
from helpers import wait_build, wait_until

SLOW = {"steps": [1, 0.5, 1.0], "minHealthy": 0.9, "bakeS": 2}


def test_scheduler_and_coordinator_killed_mid_flight(api, stack, new_project):
    project, sha, _ = new_project("sleep 2; mkdir -p dist && echo v > dist/v")
    first = api.post(f"/projects/{project}/builds", json={"commitSHA": sha}).json()["buildID"]
    assert wait_build(api, project, first, timeout_s=180)["buildStatus"] == "SUCCEEDED"
    dep = api.post(f"/projects/{project}/deployments", json={"buildID": first, "strategy": SLOW}).json()["deploymentID"]
    builds = [api.post(f"/projects/{project}/builds", json={"commitSHA": sha}).json()["buildID"] for _ in range(4)]
    wait_until(lambda: any(api.get(f"/projects/{project}/builds/{b}").json()["buildStatus"] == "BUILDING" for b in builds),
               60, "a build to be under way")
    stack.connect()
    assert api.get(f"/projects/{project}/deployments/{dep}").json()["status"] == "IN_PROGRESS"   # killed mid-flight
    assert any(api.get(f"/projects/{project}/builds/{b}").json()["buildStatus"] in ("QUEUED", "BUILDING") for b in builds)
    ray.kill(ray.get_actor(SCHEDULER, namespace=NAMESPACE), no_restart=False)
    ray.kill(ray.get_actor(coordinator_name("us-east-a"), namespace=NAMESPACE), no_restart=False)
    recs = [wait_build(api, project, b, timeout_s=300) for b in builds]
    assert [r["buildStatus"] for r in recs] == ["SUCCEEDED"] * 4, recs
    deadline = time.monotonic() + 240
    while (d := api.get(f"/projects/{project}/deployments/{dep}").json())["status"] == "IN_PROGRESS":
        assert time.monotonic() < deadline, d
        time.sleep(0.5)
    assert d["status"] == "COMPLETED", d
    assert d["hosts"]["active"] == d["hosts"]["total"] - d["hosts"]["lost"] > 0, d
    wait_until(lambda: ray.get(ray.get_actor(SCHEDULER, namespace=NAMESPACE).stats.remote())["inflight"] == 0,
               60, "the restarted scheduler to reap every attempt")
