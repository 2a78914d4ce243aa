"""Findings 3 and 14: what a build can do to its own sandbox, on the real stack."""
import re

from gantry.actors.build.sandbox.seccomp import CLONE3, clone_number, denied_syscalls
from helpers import host_processes_matching, wait_build

CLONE_NEWUSER, CLONE_NEWNET, SIGCHLD = 0x10000000, 0x40000000, 17


def run(api, new_project, command, details=None):
    project, sha, _ = new_project(command)
    body = {"commitSHA": sha, **({"buildDetails": details} if details else {})}
    b = api.post(f"/projects/{project}/builds", json=body).json()["buildID"]
    rec = wait_build(api, project, b, timeout_s=180)
    return rec, api.get(f"/projects/{project}/builds/{b}/logs").json()["data"]


def test_no_new_user_namespace_through_clone_or_clone3(api, new_project):
    """The review got a child with a user namespace of its own (all capabilities in it) through
    clone(CLONE_NEWUSER), and from there netfilter and packet sockets."""
    rec, log = run(api, new_project, f"""python3 -c "
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
for flags in ({CLONE_NEWUSER | SIGCHLD}, {CLONE_NEWUSER | CLONE_NEWNET | SIGCHLD}):
    pid = libc.syscall({clone_number()}, flags, 0, 0, 0, 0)
    if pid == 0:
        print('CHILD-IN-' + 'NEW-NS', flush=True)
        os._exit(0)
    print('clone', hex(flags), pid, os.strerror(ctypes.get_errno()), flush=True)
    if pid > 0:
        os.waitpid(pid, 0)
args = ctypes.create_string_buffer(88)
print('clone3', libc.syscall({CLONE3}, args, 88), os.strerror(ctypes.get_errno()), flush=True)
print('io_uring_setup', libc.syscall({denied_syscalls()['io_uring_setup']}, 8, ctypes.create_string_buffer(120)),
      os.strerror(ctypes.get_errno()), flush=True)
"
unshare -U -r id 2>&1; echo unshare=$?
python3 -c "import subprocess, threading; t = threading.Thread(target=print, args=('thread ok',)); t.start(); t.join(); subprocess.run(['echo', 'fork ok'])"
exit 1""")
    assert "CHILD-IN-NEW-NS" not in log, log
    assert re.search(r"clone 0x10000011 -1 Operation not permitted", log), log
    assert re.search(r"clone 0x50000011 -1 Operation not permitted", log), log
    assert "clone3 -1 Function not implemented" in log
    assert "io_uring_setup -1 Operation not permitted" in log
    assert "unshare=0" not in log
    assert "thread ok" in log and "fork ok" in log   # libc falls back from clone3 to clone


def test_build_environment_is_not_on_any_command_line(api, new_project):
    """buildDetails.env reached bwrap as --setenv arguments, readable by any local user in ps."""
    value = "s3cret-" + "value-visible-in-ps-7731"
    marker = "sleep 3107"
    project, sha, _ = new_project(f"echo got=$DEPLOY_KEY; {marker}; exit 1")
    b = api.post(f"/projects/{project}/builds", json={
        "commitSHA": sha, "buildDetails": {"env": {"DEPLOY_KEY": value}}}).json()["buildID"]
    seen = []
    import time
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not seen:
        seen = host_processes_matching(marker)
        time.sleep(0.2)
    assert seen, "the build never ran"
    assert host_processes_matching(value) == []
    api.patch(f"/projects/{project}/builds/{b}?op=CANCEL")
    wait_build(api, project, b)
    log = api.get(f"/projects/{project}/builds/{b}/logs").json()["data"]
    assert f"got={value}" in log   # still reaches the build itself
