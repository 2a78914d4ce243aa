"""Chaos on the real stack: a region's blob store down past eight retries of its replication,
beyond the point where replication used to give up (six attempts). The build must SUCCEED once the
store is back, with the region's row showing the retries it took; a deployment started during
the outage completes in the region that holds the build, waits in the other, saying why, and
completes there once the replica lands."""
import signal
import time

from helpers import reassemble, wait_build

FAST = {"steps": [1, 1.0], "minHealthy": 0.9, "bakeS": 0.5}


def test_a_long_store_outage_delays_replication_and_loses_nothing(api, stack, new_project, tmp_path):
    project, sha, _ = new_project("mkdir -p dist && head -c 3000000 /dev/urandom > dist/blob")
    stack.stop_process("s3-eu-west", signal.SIGKILL)
    down_at = time.monotonic()
    try:
        b = api.post(f"/projects/{project}/builds", json={"commitSHA": sha}).json()["buildID"]
        rec = wait_build(api, project, b, until={"DEPLOYING", "SUCCEEDED", "FAILED"}, timeout_s=180)
        assert rec["buildStatus"] == "DEPLOYING", rec
        r = api.post(f"/projects/{project}/deployments", json={"buildID": b, "strategy": FAST})
        assert r.status_code == 202, r.text
        dep = r.json()["deploymentID"]
        deadline = time.monotonic() + 80
        while (d := api.get(f"/projects/{project}/deployments/{dep}").json()):
            dcs = {dc["dc"]: dc for region in d["regions"] for dc in region["dcs"]}
            if dcs["us-east-a"]["phase"] == "DONE":
                break
            assert time.monotonic() < deadline, d
            time.sleep(0.5)
        assert d["status"] == "IN_PROGRESS" and dcs["eu-west-a"]["phase"] == "WAITING_FOR_REPLICA", d
        assert "waiting for the build's replica in eu-west (RETRYING" in dcs["eu-west-a"]["waiting"], d
        while True:   # the outage lasts until the region has retried past six times
            rec = api.get(f"/projects/{project}/builds/{b}").json()
            assert rec["buildStatus"] == "DEPLOYING", rec
            row = next(r for r in rec["replication"] if r["region"] == "eu-west")
            if row["retries"] >= 8:
                break
            assert time.monotonic() - down_at < 180, row
            time.sleep(0.5)
        assert row["replicationStatus"] == "RETRYING" and row["error"], row
    finally:
        stack.respawn("s3-eu-west")
    rec = wait_build(api, project, b, timeout_s=180)
    assert rec["buildStatus"] == "SUCCEEDED", rec
    assert all(r["replicationStatus"] == "REPLICATED" for r in rec["replication"])
    region = next(r for r in stack.config().regions if r.name == "eu-west")
    assert (reassemble(stack, region, rec["artifact"]["digest"], tmp_path / "x") / "blob").stat().st_size == 3000000
    deadline = time.monotonic() + 180
    while (d := api.get(f"/projects/{project}/deployments/{dep}").json())["status"] == "IN_PROGRESS":
        assert time.monotonic() < deadline, d
        time.sleep(0.5)
    assert d["status"] == "COMPLETED", d
    eu = next(x for x in d["regions"] if x["region"] == "eu-west")
    assert eu["hosts"]["active"] == eu["hosts"]["total"] - eu["hosts"]["lost"] > 0, eu
    r = api.post(f"/projects/{project}/builds/{b}/replication?op=RETRY")
    assert r.status_code == 409 and r.json()["error"] == "nothing to retry"
