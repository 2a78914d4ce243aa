"""Issue 13 on the stack's real node daemons: stage everywhere first, then activate; a target
reaches a host by long-poll, not at its next report; and hosts report to their own region's
coordinator endpoint, never to the head node."""
import os
import threading

import ray

from conftest import client, host_endpoint
from gantry.auth import issue_host
from gantry.constants import HEAD_RESOURCE, NAMESPACE, coordinator_name
from helpers import wait_build, wait_until

STAGED = {"steps": [1, 1.0], "minHealthy": 0.9, "bakeS": 0.5, "stage": "all"}


def host_dir(stack, host, project):
    return stack.home / "hosts" / host / "projects" / project


def ok_build(api, project, sha):
    b = api.post(f"/projects/{project}/builds", json={"commitSHA": sha}).json()["buildID"]
    assert wait_build(api, project, b)["buildStatus"] == "SUCCEEDED"
    return b


def deployed(api, project, dep):
    d = api.get(f"/projects/{project}/deployments/{dep}").json()
    return d if d["status"] not in ("IN_PROGRESS", "PAUSED") else None


def test_every_host_of_every_region_stages_before_the_first_activates(api, stack, new_project):
    project, sha, _ = new_project("mkdir -p dist && head -c 3000000 /dev/urandom > dist/blob")
    b = ok_build(api, project, sha)
    dep = api.post(f"/projects/{project}/deployments", json={"buildID": b, "strategy": STAGED}).json()["deploymentID"]
    seen_staged = set()

    def progress():   # the API shows staged counts while the deployment moves
        d = api.get(f"/projects/{project}/deployments/{dep}").json()
        if d["hosts"]["staged"]:
            seen_staged.add(d["hosts"]["staged"])
        return d if d["status"] not in ("IN_PROGRESS", "PAUSED") else None
    wait_until(progress, 180, "the deployment")
    d = progress()
    assert d["status"] == "COMPLETED", d
    hosts = [h for h in stack.hosts() if (host_dir(stack, h, project) / "current").is_symlink()]
    assert len(hosts) >= 4 and seen_staged
    # each host's release was complete (its marker written) before any host switched `current`
    staged = [os.lstat(host_dir(stack, h, project) / "releases" / b / ".complete").st_mtime for h in hosts]
    switched = [os.lstat(host_dir(stack, h, project) / "current").st_mtime for h in hosts]
    assert max(staged) <= min(switched), (staged, switched)
    assert d["strategy"]["regionWaves"] == [["us-east"], ["eu-west"]]   # the default: first region, then the rest


def test_a_target_reaches_a_waiting_host_by_long_poll(api, stack, new_project):
    """A host of our own waits on the endpoint with a long timeout; a deployment wakes it with
    a new target version long before that timeout (the answer says which: a changed version)."""
    project, sha, _ = new_project("mkdir -p dist && echo hi > dist/hi")
    b = ok_build(api, project, sha)
    token = issue_host(stack.config().jwt_secret(), "poller", "eu-west-a")
    report = {"hostID": "poller", "region": "eu-west", "address": "127.0.0.1:9", "serves": [project],
              "projects": {project: {"state": "idle"}}}
    with host_endpoint(stack, token, "eu-west-a") as c:
        first = c.post("/heartbeat", json=report).json()
        assert first["reportInS"] >= 3 and first["projects"][project] == {"targetBuildID": None}   # idle, nothing to do
        answer = {}
        t = threading.Thread(target=lambda: answer.update(c.post("/watch", json={
            "hostID": "poller", "version": first["version"], "waitS": 55}, timeout=70).json()))
        t.start()
        dep = api.post(f"/projects/{project}/deployments", json={"buildID": b, "strategy": STAGED}).json()
        t.join(70)
        assert answer["version"] != first["version"]   # woken by the change, not by the timeout
        told = c.post("/heartbeat", json=report).json()
        assert told["projects"][project]["stage"]["buildID"] == b and told["reportInS"] <= 1
    api.post(f"/projects/{project}/deployments/{dep['deploymentID']}?op=ABORT")


def test_hosts_report_to_their_regions_coordinator_node_not_the_head(api, stack):
    stack.connect()
    nodes = {n["NodeID"]: n["Resources"] for n in ray.nodes() if n["Alive"]}
    for dc, region in (("us-east-a", "us-east"), ("eu-west-a", "eu-west")):
        coord = ray.get_actor(coordinator_name(dc), namespace=NAMESPACE)
        where = ray.get(coord.where.remote())
        assert f"region:{region}" in nodes[where["node"]]                 # the region's own Ray node
        assert HEAD_RESOURCE not in nodes[where["node"]]
        served = where["served"]
        wait_until(lambda: ray.get(coord.where.remote())["served"] > served, 30, f"{dc}'s hosts to report")
        for host in (h for h in stack.hosts() if h.startswith(dc)):
            assert f"reporting to {where['url']}" in (stack.logs / f"host-{host}.log").read_text(), host
    token = issue_host(stack.config().jwt_secret(), "us-east-a-h0", "us-east-a")
    with client(stack, token) as c:   # the head node's API has no route that takes a report
        assert c.post("/dc/us-east-a/heartbeat", json={}).status_code in (404, 405)
