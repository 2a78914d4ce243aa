"""Issue 24: the loss of the Ray head alone, in a wave's bake, then `gantry up --home H` with one
more region: a region that joins while a deployment runs. Runs last (see conftest), beside the
whole-stack restart: it kills the shared stack's head and leaves it with three regions.

Only the Ray head dies. Its GCS is not fault tolerant here, so the API and the actors go with it;
the hosts keep serving their release and keep retrying. `gantry up` restarts the control plane
and leaves the running host agents as they are (the same processes). The deployment under way,
made for two regions, goes on from its wave and COMPLETES there on those agents (this run once
found a restarted coordinator ending the bake on records from before the loss, and a rollback
that then never finished); the new region holds nothing open, and once the deployment is done
the new region's host runs the build too (its store got the replica by a backfill job), like a
host that joined late."""
import signal
import subprocess
import time

import ray

from gantry.cluster.processes import alive, bin_path
from helpers import commit, wait_build, wait_until

FAST = {"steps": [1.0], "minHealthy": 0.9, "bakeS": 0}
WAVES = {"steps": [1, 1.0], "minHealthy": 0.9, "bakeS": 3}


def test_the_ray_head_lost_in_a_bake_comes_back_with_up_and_a_new_region_the_agents_stay(api, stack, new_project):
    project, sha, repo = new_project("mkdir -p dist && echo v1 > dist/v")
    b1 = api.post(f"/projects/{project}/builds", json={"commitSHA": sha}).json()["buildID"]
    assert wait_build(api, project, b1)["buildStatus"] == "SUCCEEDED"
    d1 = api.post(f"/projects/{project}/deployments", json={"buildID": b1, "strategy": FAST}).json()["deploymentID"]
    wait_until(lambda: api.get(f"/projects/{project}/deployments/{d1}").json()["status"] == "COMPLETED", 120,
               "the first deployment")
    b2 = api.post(f"/projects/{project}/builds", json={"commitSHA": commit(repo, {"gantry.toml": (
        '[build]\ncommand = "mkdir -p dist && echo v2 > dist/v"\noutput = "dist"\n')})}).json()["buildID"]
    assert wait_build(api, project, b2)["buildStatus"] == "SUCCEEDED"
    d2 = api.post(f"/projects/{project}/deployments", json={"buildID": b2, "strategy": WAVES}).json()["deploymentID"]
    wait_until(lambda: any(h["activeBuildID"] == b2 for h in api.get(f"/projects/{project}/hosts").json()), 120,
               "the first wave")
    assert api.get(f"/projects/{project}/deployments/{d2}").json()["status"] == "IN_PROGRESS"
    agents = {name: p["pid"] for name, p in stack.pids().items() if p.get("host")}
    regions = [r.name for r in stack.config().regions]

    def current(host):
        path = stack.home / "hosts" / host / "projects" / project / "current" / "v"
        return path.read_text() if path.exists() else None

    stack.stop_process("ray-head", signal.SIGKILL)
    ray.shutdown()   # this test's own connection was to the Ray that is gone
    wait_until(lambda: not stack.api_healthy(), 30, "the API to go with the head")
    for h in stack.hosts():
        assert current(h) in ("v1\n", "v2\n") and alive(agents[f"host-{h}"])   # serving, and its agent retries

    up = subprocess.run([bin_path("gantry"), "up", "--home", str(stack.home), "--regions", ",".join([*regions, "ap-south"])],
                        capture_output=True, text=True, timeout=400)
    assert up.returncode == 0, up.stdout + up.stderr
    assert f"restarting its control plane ({len(agents)} running host agents stay)" in up.stdout, up.stdout
    assert {name: p["pid"] for name, p in stack.pids().items() if p.get("host")} == agents
    assert all(alive(pid) for pid in agents.values())
    assert [r.name for r in stack.config().regions] == [*regions, "ap-south"]
    add = subprocess.run([bin_path("gantry"), "host", "add", "--home", str(stack.home), "--region", "ap-south"],
                         capture_output=True, text=True, timeout=120)
    assert add.returncode == 0, add.stdout + add.stderr
    joined = add.stdout.split()[-1]

    deadline = time.monotonic() + 240
    while (d := api.get(f"/projects/{project}/deployments/{d2}").json())["status"] == "IN_PROGRESS":
        assert time.monotonic() < deadline, d
        time.sleep(0.5)
    assert d["status"] == "COMPLETED", d
    assert sorted(r["region"] for r in d["regions"]) == sorted(regions)   # made for two: the third held nothing
    assert all(current(name.removeprefix("host-")) == "v2\n" for name in agents)
    wait_until(lambda: current(joined) == "v2\n", 120, f"{joined} to run the build")
    build = api.get(f"/projects/{project}/builds/{b2}").json()
    row = next(r for r in build["replication"] if r["region"] == "ap-south")
    assert build["buildStatus"] == "SUCCEEDED" and row["replicationStatus"] == "REPLICATED", build
