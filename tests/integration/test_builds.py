"""Builds end to end on the real stack: success, failure, logs, cancel."""
import time

from helpers import host_processes_matching, reassemble, wait_build


def test_successful_build_stores_the_output_in_the_primary_region(api, stack, new_project, tmp_path):
    project, sha, _ = new_project(
        "mkdir -p dist/bin && printf 'hello %s' \"$GREETING\" > dist/bin/app && echo compiled",
        files={"src/main.c": "int main(){}"})
    r = api.post(f"/projects/{project}/builds", json={"commitSHA": sha, "buildDetails": {"env": {"GREETING": "world"}}})
    assert r.status_code == 202
    accepted = r.json()
    assert accepted["buildStatus"] == "QUEUED" and accepted["commitSHA"] == sha
    rec = wait_build(api, project, accepted["buildID"])
    assert rec["buildStatus"] == "SUCCEEDED", rec
    assert rec["startedAt"] and rec["finishedAt"] and rec["retries"] == 0 and rec["error"] is None
    assert rec["artifact"]["digest"].startswith("blake3:") and rec["artifact"]["chunks"] >= 1
    for region in stack.config().regions:  # the primary, and every region it replicated to
        release = reassemble(stack, region, rec["artifact"]["digest"], tmp_path / region.name)
        assert sorted(p.relative_to(release).as_posix() for p in release.rglob("*")) == ["bin", "bin/app"]
        assert (release / "bin/app").read_bytes() == b"hello world"
    assert {r["region"]: r["replicationStatus"] for r in rec["replication"]} == {
        r.name: "REPLICATED" for r in stack.config().regions}

    log = api.get(f"/projects/{project}/builds/{accepted['buildID']}/logs").json()
    assert "compiled" in log["data"] and log["complete"] is True
    tail = api.get(f"/projects/{project}/builds/{accepted['buildID']}/logs",
                   params={"offset": log["nextOffset"] - 20}).json()
    assert tail["data"] == log["data"][-20:] and tail["nextOffset"] == log["nextOffset"]


def test_failing_build_is_failed_with_exit_code_and_log_tail(api, new_project):
    project, sha, _ = new_project("echo 'error: undefined reference to main' >&2; exit 7")
    b = api.post(f"/projects/{project}/builds", json={"commitSHA": sha}).json()["buildID"]
    rec = wait_build(api, project, b)
    assert rec["buildStatus"] == "FAILED" and rec["exitCode"] == 7 and rec["retries"] == 0
    assert "exited with code 7" in rec["error"]
    assert "undefined reference to main" in rec["logTail"]
    assert rec["artifact"] is None


def test_missing_gantry_toml_and_unknown_commit_fail_with_a_reason(api, new_project):
    project, sha, repo = new_project("true")
    (repo / "gantry.toml").unlink()
    from helpers import git
    git(repo, "commit", "-qam", "drop config")
    no_config = git(repo, "rev-parse", "HEAD")
    b1 = api.post(f"/projects/{project}/builds", json={"commitSHA": no_config}).json()["buildID"]
    b2 = api.post(f"/projects/{project}/builds", json={"commitSHA": "0" * 40}).json()["buildID"]
    r1, r2 = wait_build(api, project, b1), wait_build(api, project, b2)
    assert r1["buildStatus"] == "FAILED" and "has no gantry.toml and the project sets no `build`" in r1["error"]
    assert r2["buildStatus"] == "FAILED" and "not found" in r2["error"] and r2["retries"] == 0


def test_cancel_queued_and_running_builds(api, new_project):
    project, sha, _ = new_project("sleep 3101; mkdir dist")
    running = [api.post(f"/projects/{project}/builds", json={"commitSHA": sha}).json()["buildID"] for _ in range(2)]
    for b in running:
        wait_build(api, project, b, until={"BUILDING"})
    deadline = time.monotonic() + 30
    while len(host_processes_matching("sleep 3101")) < 2:  # both sandboxes are up
        assert time.monotonic() < deadline, "builds did not start their sandboxes"
        time.sleep(0.2)
    queued = api.post(f"/projects/{project}/builds", json={"commitSHA": sha}).json()["buildID"]
    time.sleep(1.5)  # give the scheduler every chance to (wrongly) start it
    assert api.get(f"/projects/{project}/builds/{queued}").json()["buildStatus"] == "QUEUED"

    r = api.patch(f"/projects/{project}/builds", params={"op": "CANCEL"}, json={"buildID": queued})
    assert r.status_code == 200 and r.json()["buildStatus"] == "CANCELLED"

    t0 = time.monotonic()
    for b in running:
        r = api.patch(f"/projects/{project}/builds/{b}", params={"op": "CANCEL"})
        assert r.status_code == 200 and r.json()["buildStatus"] == "CANCELLED"
    while host_processes_matching("sleep 3101"):
        assert time.monotonic() - t0 < 5, "sandbox still running 5 s after cancel"
        time.sleep(0.1)

    time.sleep(2)
    rec = api.get(f"/projects/{project}/builds/{queued}").json()
    assert rec["buildStatus"] == "CANCELLED" and rec["startedAt"] is None
    for b in running:
        rec = api.get(f"/projects/{project}/builds/{b}").json()
        assert rec["buildStatus"] == "CANCELLED" and rec["artifact"] is None

    r = api.patch(f"/projects/{project}/builds/{queued}", params={"op": "CANCEL"})
    assert r.status_code == 409 and r.json()["error"] == "build cannot be cancelled"
