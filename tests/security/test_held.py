"""What held in the adversarial review and must keep holding, beside the sandbox tests in
tests/integration/test_sandbox.py (network, read-only root, memory, fork bomb, timeouts, denied
syscalls), tests/integration/test_api.py (JWT and per-project authorization),
tests/unit/test_unpack.py (tar refusals) and tests/integration/test_p2p_download.py (bad peers)."""
import time
from pathlib import Path

from helpers import wait_build

CGROUPS = Path("/sys/fs/cgroup")


def run(api, new_project, command):
    project, sha, _ = new_project(command)
    b = api.post(f"/projects/{project}/builds", json={"commitSHA": sha}).json()["buildID"]
    return project, b


def test_proc_shows_only_the_build_and_sys_is_absent(api, stack, new_project):
    project, b = run(api, new_project, "for f in /proc/[0-9]*/cmdline; do xargs -0 echo < $f; done; "
                                       "ls /sys 2>&1 | head -3; xargs -0 -n1 < /proc/1/environ; exit 1")
    wait_build(api, project, b)
    log = api.get(f"/projects/{project}/builds/{b}/logs").json()["data"]
    assert "sh -c for f in /proc" in log                  # it did see its own processes
    assert "redis-server" not in log and "raylet" not in log and "gantry-node" not in log
    assert "No such file or directory" in log              # no /sys at all
    assert "GANTRY_STACK_FILE" not in log and "RAY_" not in log


def test_cpu_memory_and_pids_limits_are_set_on_the_build(api, stack, new_project):
    """The limits live in the build's cgroups, read here from the host while it runs."""
    project, b = run(api, new_project, "sleep 3109")
    deadline, found = time.monotonic() + 120, {}
    while time.monotonic() < deadline and len(found) < 3:
        for controller, knob in (("cpu", "cpu.cfs_quota_us"), ("memory", "memory.limit_in_bytes"),
                                 ("pids", "pids.max"), ("unified", "cpu.max")):
            base = CGROUPS / controller / "gantry" if controller != "unified" else CGROUPS / "gantry"
            for d in base.glob(f"{b}-*") if base.exists() else []:
                if (d / "cgroup.procs").exists() and (d / "cgroup.procs").read_text().strip():
                    found[knob] = (d / knob).read_text().strip()
        time.sleep(0.3)
    api.patch(f"/projects/{project}/builds/{b}?op=CANCEL")
    wait_build(api, project, b)
    if "cpu.max" in found:                                   # cgroup v2
        assert found["cpu.max"] == "100000 100000", found
    else:
        assert found.get("cpu.cfs_quota_us") == "100000", found
        assert found.get("memory.limit_in_bytes") == str(256 << 20), found
        assert found.get("pids.max") == "128", found
