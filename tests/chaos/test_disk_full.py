"""Issue 24: disk full is a fault with a clear outcome, never a hang or a loop. Real small disks:
a tmpfs mounted over the stack's build workspaces, and under a host's home."""
import subprocess
import uuid
from contextlib import contextmanager
from pathlib import Path

from helpers import commit, wait_build, wait_until

FAST = {"steps": [1.0], "minHealthy": 0.5, "bakeS": 0}


@contextmanager
def small_disk(path: Path, size_mb: int, mode: str = "0711"):
    """A tmpfs of `size_mb` over `path` (what was there is hidden, not touched) until the block ends."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode={mode}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def test_a_builder_out_of_disk_fails_the_build_with_that_reason_not_dead(api, stack, new_project):
    """A 24 MB output on a 16 MB build disk: the command fails writing it, and the build is FAILED
    at once with the reason, not retried into DEAD."""
    project, sha, _ = new_project("mkdir -p out && head -c 25165824 /dev/zero > out/big")
    with small_disk(Path(stack.config().builds_dir), 16):
        b = api.post(f"/projects/{project}/builds", json={"commitSHA": sha}).json()["buildID"]
        rec = wait_build(api, project, b)
    assert rec["buildStatus"] == "FAILED", rec
    assert "the builder ran out of disk" in rec["error"] and rec["retries"] == 0, rec
    log = api.get(f"/projects/{project}/builds/{b}/logs").json()
    assert "No space left on device" in str(log)


def test_a_host_out_of_disk_reports_failed_with_the_reason_and_keeps_its_release(api, stack, new_project):
    small, sha_small, repo = new_project("mkdir -p dist && echo one > dist/who")
    host_id = f"tiny-{uuid.uuid4().hex[:6]}"
    home = stack.home / "hosts" / host_id
    with small_disk(home, 8):
        stack.start_host(host_id, "us-east", "us-east-a", projects=[small])
        try:
            first = api.post(f"/projects/{small}/builds", json={"commitSHA": sha_small}).json()["buildID"]
            assert wait_build(api, small, first)["buildStatus"] == "SUCCEEDED"
            api.post(f"/projects/{small}/deployments", json={"buildID": first, "strategy": FAST}).raise_for_status()

            def state():
                return next((h for h in api.get(f"/projects/{small}/hosts").json() if h["hostID"] == host_id), {})
            wait_until(lambda: state().get("activeBuildID") == first and state().get("state") == "active", 120,
                       "the small host to run the first build")
            # the next build is 12 MB of random bytes: more than the host's 8 MB disk holds
            sha_big = commit(repo, {"gantry.toml": '[build]\ncommand = "mkdir -p dist && head -c 12582912 '
                                                   '/dev/urandom > dist/blob && echo two > dist/who"\noutput = "dist"\n'})
            big = api.post(f"/projects/{small}/builds", json={"commitSHA": sha_big}).json()["buildID"]
            assert wait_build(api, small, big)["buildStatus"] == "SUCCEEDED"
            api.post(f"/projects/{small}/deployments", json={"buildID": big, "strategy": FAST}).raise_for_status()
            wait_until(lambda: state().get("state") == "failed", 120, "the small host to report the release failed")
            h = state()
            assert "disk" in (h.get("error") or ""), h
            assert h["activeBuildID"] == first, h   # it keeps serving what it ran
            assert (home / "projects" / small / "current" / "who").read_text() == "one\n"
        finally:
            stack.remove_host(host_id)
