"""Issue 24: the loss of the Ray head alone, then `gantry up --home H`. Runs last (see conftest),
beside the whole-stack restart: it kills the shared stack's head."""
import signal
import subprocess

import ray

from gantry.cluster.processes import alive, bin_path
from helpers import commit, wait_build, wait_until


FAST = {"steps": [1.0], "minHealthy": 0.9, "bakeS": 0}


def test_the_ray_head_lost_alone_comes_back_with_up_and_the_host_agents_stay(api, stack, new_project):
    """Only the Ray head dies. Its GCS is not fault tolerant here, so the API and the actors go
    with it; the hosts keep serving their release and keep retrying. `gantry up --home H`
    restarts the control plane and leaves the running host agents as they are (the same
    processes), and the next build deploys to them."""
    project, sha, repo = new_project("mkdir -p dist && echo v1 > dist/v")
    b1 = api.post(f"/projects/{project}/builds", json={"commitSHA": sha}).json()["buildID"]
    assert wait_build(api, project, b1)["buildStatus"] == "SUCCEEDED"
    d1 = api.post(f"/projects/{project}/deployments", json={"buildID": b1, "strategy": FAST}).json()["deploymentID"]
    wait_until(lambda: api.get(f"/projects/{project}/deployments/{d1}").json()["status"] == "COMPLETED", 120,
               "the first deployment")
    agents = {name: p["pid"] for name, p in stack.pids().items() if p.get("host")}

    def current(host):
        return (stack.home / "hosts" / host / "projects" / project / "current" / "v").read_text()

    stack.stop_process("ray-head", signal.SIGKILL)
    ray.shutdown()
    wait_until(lambda: not stack.api_healthy(), 30, "the API to go with the head")
    for h in stack.hosts():
        assert current(h) == "v1\n" and alive(agents[f"host-{h}"])   # serving, and its agent retries

    up = subprocess.run([bin_path("gantry"), "up", "--home", str(stack.home)], capture_output=True, text=True, timeout=400)
    assert up.returncode == 0, up.stdout + up.stderr
    assert f"restarting its control plane ({len(agents)} running host agents stay)" in up.stdout, up.stdout
    assert {name: p["pid"] for name, p in stack.pids().items() if p.get("host")} == agents
    assert all(alive(pid) for pid in agents.values())

    b2 = api.post(f"/projects/{project}/builds", json={"commitSHA": commit(repo, {"gantry.toml": (
        '[build]\ncommand = "mkdir -p dist && echo v2 > dist/v"\noutput = "dist"\n')})}).json()["buildID"]
    assert wait_build(api, project, b2, timeout_s=180)["buildStatus"] == "SUCCEEDED"
    d2 = api.post(f"/projects/{project}/deployments", json={"buildID": b2, "strategy": FAST}).json()["deploymentID"]
    wait_until(lambda: api.get(f"/projects/{project}/deployments/{d2}").json()["status"] == "COMPLETED", 180,
               "a deployment to the hosts whose agents stayed")
    assert all(current(h) == "v2\n" for h in stack.hosts())
