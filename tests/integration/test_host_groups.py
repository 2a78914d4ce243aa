"""Issue 12: many projects on shared hosts, with the stack's real node daemons. Each host runs
each project's build side by side, a host added late converges to every project it serves, and
a start command that keeps running is the service, not a hung install."""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from helpers import wait_build, wait_until

FAST = {"steps": [1, 1.0], "minHealthy": 0.9, "bakeS": 0.5}
GANTRY = str(Path(sys.executable).parent / "gantry")


def deployed(api, project, dep_id):
    return api.get(f"/projects/{project}/deployments/{dep_id}").json()["status"] == "COMPLETED"


def current(stack, host, project) -> Path:
    return stack.home / "hosts" / host / "projects" / project / "current"


def test_two_projects_share_the_hosts_and_a_late_host_converges_to_both(api, stack, new_project):
    # each service notes its pid in a sticky directory: B runs as its own uid on each host, and
    # one host's B cannot write a file another host's B made
    piddir = Path(tempfile.mkdtemp(prefix="gantry-test-start-"))
    piddir.chmod(0o1777)
    a, sha_a, _ = new_project("mkdir -p dist && echo A > dist/who")
    # B's start command is the service itself: it never exits (it used to hang the install 60 s)
    toml = ('[build]\ncommand = "mkdir -p dist && echo B > dist/who"\noutput = "dist"\n[deploy]\n'
            f'start = "touch {piddir}/$$; exec sleep 600"\nhealth = "grep -q B who"\n')
    b, sha_b, _ = new_project("true", files={"gantry.toml": toml})
    bystander, _, _ = new_project("true")
    builds = {}
    for project, sha in ((a, sha_a), (b, sha_b)):
        builds[project] = api.post(f"/projects/{project}/builds", json={"commitSHA": sha}).json()["buildID"]
    for project, build_id in builds.items():
        assert wait_build(api, project, build_id)["buildStatus"] == "SUCCEEDED"
    hosts = sorted(h for h in stack.hosts())
    added = None
    try:
        deps = {p: api.post(f"/projects/{p}/deployments", json={"buildID": bid, "strategy": FAST}).json()["deploymentID"]
                for p, bid in builds.items()}   # both at once, to the same hosts
        wait_until(lambda: all(deployed(api, p, d) for p, d in deps.items()), 180, "both deployments to complete")
        for host in hosts:
            for project, letter in ((a, "A"), (b, "B")):
                assert (current(stack, host, project) / "who").read_text() == f"{letter}\n", (host, project)
        for project in (a, b):
            listed = api.get(f"/projects/{project}/hosts").json()
            live = [h for h in listed if h["state"] != "lost"]
            assert {h["hostID"] for h in live} >= set(hosts)
            assert all(h["activeBuildID"] == builds[project] and h["state"] == "active" for h in live), listed
            assert all(h["address"] for h in live)

        out = subprocess.run([GANTRY, "host", "add", "--home", str(stack.home), "--region", "eu-west",
                              "--project", a, "--project", b], capture_output=True, text=True, check=True).stdout
        added = out.strip().splitlines()[-1]

        def converged():
            return all(any(h["hostID"] == added and h["state"] == "active" and h["activeBuildID"] == builds[p]
                           for h in api.get(f"/projects/{p}/hosts").json()) for p in (a, b))
        wait_until(converged, 60, "the late host to run both projects' builds")
        assert (current(stack, added, a) / "who").read_text() == "A\n"
        assert (current(stack, added, b) / "who").read_text() == "B\n"
        assert added not in {h["hostID"] for h in api.get(f"/projects/{bystander}/hosts").json()}   # not its project
        assert {h["hostID"] for h in api.get(f"/projects/{bystander}/hosts").json()} >= set(hosts)
        services = [int(p.name) for p in piddir.iterdir()]
        assert len(services) >= len(hosts) + 1   # every host started B's service and finished installing...
        for pid in services:
            os.kill(pid, 0)                      # ...while the service kept running
    finally:
        if added:
            stack.remove_host(added)
        for p in piddir.iterdir():
            try:   # the services B's start commands left running: ours to stop
                os.kill(int(p.name), signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(piddir, ignore_errors=True)
