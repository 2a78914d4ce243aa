"""Issue 22, points 1 and 2: another project on the same builder or host. Real builds in real
sandboxes, real node daemons with real hooks: one tenant's processes try to read, poison and
kill another's."""
import os
import subprocess
import time
import uuid
from pathlib import Path

from gantry.settings import Settings
from gantry.uids import PROJECT_UIDS, processes_of
from helpers import wait_build, wait_until

FAST = {"steps": [1.0], "minHealthy": 0.9, "bakeS": 0}   # one wave: what is tested is who may touch what
HOOK_USER = 65534   # `nobody`: what every build and every hook ran as before


def uid_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError(pid)


def pids_running(marker: str) -> list[int]:
    out = []
    for p in Path("/proc").iterdir():
        try:
            if p.name.isdigit() and marker.encode() in (p / "cmdline").read_bytes().replace(b"\0", b" "):
                out.append(int(p.name))
        except OSError:
            pass
    return out


def sleeps(marker: str) -> list[int]:
    """The processes that are `sleep <marker>` and nothing else."""
    out = []
    for pid in pids_running(marker):
        try:
            if Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:2] == [b"sleep", marker.encode()]:
                out.append(pid)
        except OSError:
            pass
    return out


def as_uid(uid: int, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), user=uid, group=uid, extra_groups=[], capture_output=True, text=True)


def test_concurrent_builds_run_as_uids_of_their_own(api, new_project):
    """A process as `nobody` (every host hook's user) read a build's secret from
    /proc/<pid>/environ and rewrote its workspace mid-build. Two builds at once now run as two
    uids of the reserved range: neither they nor `nobody` can read or write the other's."""
    markers = {name: f"12.{uuid.uuid4().int % 10**6:06d}{i}" for i, name in enumerate("ab")}   # 12 s, findable
    projects = {}
    for name, marker in markers.items():
        project, sha, _ = new_project(f"echo main > main.c; sleep {marker}; mkdir dist; cp main.c dist/")
        # first in the queue: other tests' builds on the shared builders must not keep these apart
        b = api.post(f"/projects/{project}/builds", json={
            "commitSHA": sha, "buildDetails": {"env": {"SECRET": f"secret-{name}"}}, "priority": 9}).json()["buildID"]
        projects[name] = (project, b)
    try:
        # the `sleep` itself, exec'd by the build's shell: the launcher's argv names the marker too,
        # and a process caught before the sandbox drops to the build's uid still shows root
        try:
            wait_until(lambda: all(sleeps(m) for m in markers.values()), 120, "both builds to run")
        except AssertionError:
            raise AssertionError(f"both builds never ran at once: {[api.get(f'/projects/{p}/builds/{b}').json() for p, b in projects.values()]}")
        pids = {n: sleeps(m)[0] for n, m in markers.items()}
        uids = {n: uid_of(p) for n, p in pids.items()}
        assert uids["a"] != uids["b"], uids
        assert all(u in Settings().build_uids and u != HOOK_USER for u in uids.values()), uids
        for attacker in (HOOK_USER, uids["b"]):
            r = as_uid(attacker, "cat", f"/proc/{pids['a']}/environ")
            assert r.returncode != 0 and "secret-a" not in r.stdout, (attacker, r)
            r = as_uid(attacker, "sh", "-c", f"echo planted > /proc/{pids['a']}/root/workspace/main.c")
            assert r.returncode != 0, (attacker, r)
            r = as_uid(attacker, "kill", "-9", str(pids["a"]))
            assert r.returncode != 0, (attacker, r)
    finally:
        for project, b in projects.values():
            wait_build(api, project, b, timeout_s=180)
    for project, b in projects.values():
        assert api.get(f"/projects/{project}/builds/{b}").json()["buildStatus"] == "SUCCEEDED"


def test_projects_on_one_host_cannot_read_or_signal_each_other(api, stack, new_project):
    """Project A's health hook listed projects/, printed B's config and killed B's service.
    Each project now has a uid and gid of its own on the host, its releases are 0750
    root:<gid>, and its services run in a cgroup of their own that a newer healthy release
    stops."""
    marker = f"3600.{uuid.uuid4().int % 10**6:06d}"   # B's service: an hour at most
    toml_b = ('[build]\ncommand = "mkdir -p dist && echo secret-b > dist/config.ini"\noutput = "dist"\n'
              f'[deploy]\nstart = "exec sleep {marker}"\n')
    b, sha_b, repo_b = new_project("true", files={"gantry.toml": toml_b})
    attack = f"""set +e
ls ../../.. && echo LISTED-PROJECTS
cat ../../../{b}/current/config.ini
for p in /proc/[0-9]*; do
  [ "$(stat -c %u $p)" = "$(id -u)" ] && continue
  if tr '\\0' ' ' < $p/cmdline 2>/dev/null | grep -q 'sleep {marker}'; then
    tr '\\0' '\\n' < $p/environ && echo READ-ENVIRON
    kill -9 ${{p#/proc/}} && echo KILLED
  fi
done
exit 0
"""
    toml_a = ('[build]\ncommand = "mkdir -p dist && cp attack.sh dist/"\noutput = "dist"\n'
              '[deploy]\nhealth = "sh attack.sh"\n')
    a, sha_a, _ = new_project("true", files={"gantry.toml": toml_a, "attack.sh": attack})
    builds = {p: api.post(f"/projects/{p}/builds", json={"commitSHA": sha}).json()["buildID"]
              for p, sha in ((b, sha_b), (a, sha_a))}
    for p, bid in builds.items():
        assert wait_build(api, p, bid)["buildStatus"] == "SUCCEEDED"

    def deploy(project, build_id):
        dep = api.post(f"/projects/{project}/deployments", json={"buildID": build_id, "strategy": FAST}).json()
        wait_until(lambda: api.get(f"/projects/{project}/deployments/{dep['deploymentID']}").json()["status"]
                   == "COMPLETED", 180, f"{project}'s deployment")
    deploy(b, builds[b])
    services = pids_running(f"sleep {marker}")
    hosts = stack.hosts()
    assert len(services) >= len(hosts)
    deploy(a, builds[a])
    for pid in services:
        os.kill(pid, 0)   # B's services outlived A's hooks
    for host in hosts:
        home = stack.home / "hosts" / host / "projects"
        log = (home / a / "releases" / builds[a] / ".gantry-hooks.log").read_text()
        for done in ("LISTED-PROJECTS", "secret-b", "READ-ENVIRON", "KILLED"):
            assert done not in log, (host, log)
        assert "Permission denied" in log and "Operation not permitted" in log, log
        st_a, st_b = (os.stat(home / p / "releases" / builds[p]) for p in (a, b))
        assert st_a.st_gid != st_b.st_gid and {st_a.st_gid, st_b.st_gid} <= set(PROJECT_UIDS), (st_a, st_b)
        assert oct(st_b.st_mode & 0o777) == "0o750" and oct(os.stat(home).st_mode & 0o777) == "0o711"
    # B's services run as B's uid, in the release's cgroup, and stop once a newer release is healthy
    assert {uid_of(p) for p in services} == {os.stat(stack.home / "hosts" / hosts[0] / "projects" / b).st_gid}
    group = Path(f"/sys/fs/cgroup/pids/gantry/node-{hosts[0]}/{b}/{builds[b]}/cgroup.procs")
    if group.parent.parent.parent.exists():   # cgroups writable here (they are on the CI machine)
        assert set(map(int, group.read_text().split())) & set(services)
    from helpers import commit
    newer = commit(repo_b, {"README": "v2"})
    b2 = api.post(f"/projects/{b}/builds", json={"commitSHA": newer}).json()["buildID"]
    assert wait_build(api, b, b2)["buildStatus"] == "SUCCEEDED"
    deploy(b, b2)
    wait_until(lambda: not any(Path(f"/proc/{p}").exists() for p in services), 30, "the old services to stop")
    left = pids_running(f"sleep {marker}")
    assert len(left) >= len(hosts)   # the new release's services run
    assert not set(left) & set(processes_of(HOOK_USER))
    for pid in left:
        os.kill(pid, 9)
