"""Issue 24: a region joins the stack while a deployment runs (the control plane stopped, then
`gantry up` with one more region, and a host added there). Runs last (see conftest): it restarts the shared
stack and leaves it with three regions.

The deployment was made for two regions: it COMPLETES there, the new region holds nothing open,
and once it is done the new region's host runs the build too (its store got the replica by a
backfill job) like a host that joined late."""
import signal
import subprocess
import time

import ray

from gantry.cluster.processes import bin_path
from helpers import wait_build, wait_until

WAVES = {"steps": [1, 1.0], "minHealthy": 0.9, "bakeS": 3}


def test_a_region_added_during_a_deployment_holds_nothing_open_and_converges_after(api, stack, new_project):
    name, sha, _ = new_project("mkdir -p dist && echo joined > dist/v")
    b = api.post(f"/projects/{name}/builds", json={"commitSHA": sha}).json()["buildID"]
    assert wait_build(api, name, b)["buildStatus"] == "SUCCEEDED"
    dep = api.post(f"/projects/{name}/deployments", json={"buildID": b, "strategy": WAVES}).json()["deploymentID"]
    wait_until(lambda: any(h["state"] == "active" for h in api.get(f"/projects/{name}/hosts").json()), 120,
               "the first wave to be active")
    assert api.get(f"/projects/{name}/deployments/{dep}").json()["status"] == "IN_PROGRESS"
    regions = [r.name for r in stack.config().regions]

    stack.stop_process("ray-head", signal.SIGKILL)   # the control plane goes; the host agents stay
    ray.shutdown()   # this test's own connection was to the Ray that is gone
    grown = ",".join([*regions, "ap-south"])
    up = subprocess.run([bin_path("gantry"), "up", "--home", str(stack.home), "--regions", grown],
                        capture_output=True, text=True, timeout=400)
    assert up.returncode == 0, up.stdout + up.stderr
    assert [r.name for r in stack.config().regions] == [*regions, "ap-south"]
    add = subprocess.run([bin_path("gantry"), "host", "add", "--home", str(stack.home), "--region", "ap-south"],
                         capture_output=True, text=True, timeout=120)
    assert add.returncode == 0, add.stdout + add.stderr
    joined = add.stdout.split()[-1]

    deadline = time.monotonic() + 240
    while (d := api.get(f"/projects/{name}/deployments/{dep}").json())["status"] == "IN_PROGRESS":
        assert time.monotonic() < deadline, d
        time.sleep(0.5)
    assert d["status"] == "COMPLETED", d
    assert sorted(r["region"] for r in d["regions"]) == sorted(regions)   # made for two: the third held nothing
    wait_until(lambda: (stack.home / "hosts" / joined / "projects" / name / "current" / "v").exists(), 120,
               f"{joined} to run the build")
    assert (stack.home / "hosts" / joined / "projects" / name / "current" / "v").read_text() == "joined\n"
    build = api.get(f"/projects/{name}/builds/{b}").json()
    row = next(r for r in build["replication"] if r["region"] == "ap-south")
    assert build["buildStatus"] == "SUCCEEDED" and row["replicationStatus"] == "REPLICATED", build
