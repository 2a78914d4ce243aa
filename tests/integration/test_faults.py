"""Crashes at awkward moments: the system recovers by itself and loses nothing.

Runs last (see conftest): it kills and restores parts of the shared stack."""
import signal
import time

import ray

from gantry.constants import NAMESPACE, SCHEDULER
from gantry.state import State
from helpers import host_processes_matching, wait_build, wait_until


def test_scheduler_killed_mid_run_loses_nothing(api, stack, new_project):
    project, sha, _ = new_project("sleep 4; mkdir -p dist; echo ok > dist/ok")
    running = api.post(f"/projects/{project}/builds", json={"commitSHA": sha}).json()["buildID"]
    store = State(stack.config().redis_url)
    wait_until(lambda: store.builds.get(running).get("attempt") == store.builds.get(running).get("leaseOwner"),
               60, "the attempt to begin")   # BUILDING comes at the claim, a moment before the attempt starts
    stack.connect()
    ray.kill(ray.get_actor(SCHEDULER, namespace=NAMESPACE), no_restart=False)  # Ray restarts it
    queued = [api.post(f"/projects/{project}/builds", json={"commitSHA": sha}).json()["buildID"] for _ in range(2)]
    first = wait_build(api, project, running)
    assert (first["buildStatus"], first["retries"]) == ("SUCCEEDED", 0), first  # the attempt outlived the scheduler
    for b in queued:
        assert wait_build(api, project, b)["buildStatus"] == "SUCCEEDED"
    wait_until(lambda: ray.get(ray.get_actor(SCHEDULER, namespace=NAMESPACE).stats.remote())["inflight"] == 0,
               30, "the restarted scheduler to reap every attempt")


def test_builder_node_killed_mid_build_reruns_elsewhere(api, stack, new_project):
    marker = "sleep 6.3201"  # long enough to kill mid-build, short enough to finish on the rerun
    project, sha, _ = new_project(f"{marker}; mkdir -p dist; echo ok > dist/ok")
    b = api.post(f"/projects/{project}/builds", json={"commitSHA": sha}).json()["buildID"]
    store = State(stack.config().redis_url)
    wait_until(lambda: store.builds.get(b).get("workerNode") and host_processes_matching(marker), 60, "the sandbox to start")
    first_node = store.builds.get(b)["workerNode"]
    victim = stack.node_name(first_node)
    assert victim and victim.startswith("ray-builder-")
    stack.kill_node(victim)
    rec = wait_build(api, project, b, timeout_s=180)
    assert rec["buildStatus"] == "SUCCEEDED" and rec["retries"] == 1, rec
    assert store.builds.get(b)["workerNode"] != first_node
    stack.forget(victim)   # a dead entry would make a later `gantry up` restart the stack
    stack.add_builder(int(victim.rsplit("-", 1)[1]) + 100)  # restore capacity for later tests


def test_redis_crash_right_after_202_loses_nothing(api, stack, new_project):
    project, sha, _ = new_project("mkdir -p dist; echo ok > dist/ok")
    r = api.post(f"/projects/{project}/builds", json={"commitSHA": sha})
    assert r.status_code == 202
    b = r.json()["buildID"]
    stack.restart_redis(signal.SIGKILL)
    assert State(stack.config().redis_url).builds.get(b) is not None  # it was on disk before the 202
    rec = wait_build(api, project, b, timeout_s=180)
    assert rec["buildStatus"] == "SUCCEEDED", rec


def test_region_node_killed_mid_replication_resumes_when_it_returns(api, stack, new_project, tmp_path):
    from helpers import reassemble
    project, sha, _ = new_project("mkdir -p dist; head -c 41943040 /dev/urandom > dist/blob")
    b = api.post(f"/projects/{project}/builds", json={"commitSHA": sha}).json()["buildID"]
    store = State(stack.config().redis_url)

    def eu_row():
        return next((r for r in store.replication.rows(b) if r["region"] == "eu-west"), None)
    wait_until(lambda: (eu_row() or {}).get("chunksTransferred", "0") not in ("0",), 120,
               "replication to eu-west to start")
    assert eu_row()["replicationStatus"] == "PENDING"
    stack.kill_node("ray-region-eu-west")   # the replicator actor dies with its node
    time.sleep(2)
    stack.respawn("ray-region-eu-west")     # the region's node comes back; Ray restarts the actor there
    rec = wait_build(api, project, b, timeout_s=240)
    assert rec["buildStatus"] == "SUCCEEDED", rec
    row = eu_row()
    from gantry.artifacts.blobstore import manifest_key, s3_for
    from gantry.artifacts.manifest import Manifest
    cfg = stack.config()
    manifest = Manifest.from_bytes(s3_for(cfg.primary, cfg.s3_access_key, cfg.s3_secret_key)
                                   .get(manifest_key(rec["artifact"]["digest"])))
    assert int(row["chunksTransferred"]) + int(row["chunksSkipped"]) == len(manifest.unique_chunks())
    reassemble(stack, next(r for r in cfg.regions if r.name == "eu-west"), rec["artifact"]["digest"],
               tmp_path / "release")
