"""Chaos on the real stack: a builder node's raylet SIGKILLed while both builders are busy.

What must hold: the build that ran there is retried once and SUCCEEDS (the node's death is
charged to it once, even though Ray lists the dead node's capacity for a while), the other
build is untouched, and the scheduler has no attempt left in flight."""

import ray

from gantry.constants import NAMESPACE, SCHEDULER
from gantry.state import State
from helpers import host_processes_matching, wait_build, wait_until


def test_a_lost_builder_costs_its_build_one_retry(api, stack, new_project):
    marker = "sleep 8.4401"
    project, sha, _ = new_project(f"{marker}; mkdir -p dist; echo ok > dist/ok")
    builds = [api.post(f"/projects/{project}/builds", json={"commitSHA": sha}).json()["buildID"] for _ in range(2)]
    store = State(stack.config().redis_url)
    wait_until(lambda: all(store.builds.get(b).get("workerNode") for b in builds)
               and len(host_processes_matching(marker)) >= 2, 90, "both builds to run")
    victim_build = builds[0]
    node = store.builds.get(victim_build)["workerNode"]
    victim = stack.node_name(node)
    assert victim and victim.startswith("ray-builder-")
    stack.kill_node(victim)
    try:
        recs = [wait_build(api, project, b, timeout_s=240) for b in builds]
        assert [r["buildStatus"] for r in recs] == ["SUCCEEDED", "SUCCEEDED"], recs
        assert recs[0]["retries"] == 1, recs[0]
        assert store.builds.get(victim_build)["workerNode"] != node
        stack.connect()
        wait_until(lambda: ray.get(ray.get_actor(SCHEDULER, namespace=NAMESPACE).stats.remote())["inflight"] == 0,
                   30, "the scheduler to reap every attempt")
    finally:
        stack.add_builder(int(victim.rsplit("-", 1)[1]) + 200)   # capacity back for later tests
