"""Hostile builds are contained by the sandbox and reported, on the real stack."""
import os
import uuid

from gantry.actors.build.sandbox.seccomp import denied_syscalls
from helpers import host_processes_matching, wait_build


def run_build(api, new_project, command, **kw):
    project, sha, _ = new_project(command, **kw)
    b = api.post(f"/projects/{project}/builds", json={"commitSHA": sha}).json()["buildID"]
    rec = wait_build(api, project, b, timeout_s=180)
    log = api.get(f"/projects/{project}/builds/{b}/logs").json()["data"]
    return rec, log


def test_no_network(api, stack, new_project):
    port = stack.pids()["redis"]["port"]
    rec, log = run_build(api, new_project, f"""python3 -c "
import socket
s = socket.create_connection(('127.0.0.1', {port}), timeout=3)
print('CONN' + 'ECTED')
" """)
    assert rec["buildStatus"] == "FAILED" and "CONNECTED" not in log
    assert "ConnectionRefusedError" in log or "Network is unreachable" in log


def test_cannot_write_outside_the_workspace(api, new_project):
    marker = f"gantry-escape-{uuid.uuid4().hex}"
    rec, log = run_build(api, new_project,
                         f"echo x > /tmp/{marker}; mkdir -p dist; M=WROTE; touch /usr/{marker} && echo ${{M}}_USR; "
                         f"echo x > /etc/{marker} && echo ${{M}}_ETC; echo x > /{marker} && echo ${{M}}_ROOT; exit 3")
    assert rec["buildStatus"] == "FAILED" and rec["exitCode"] == 3
    assert not {"WROTE_USR", "WROTE_ETC", "WROTE_ROOT"} & set(log.split()) and "Read-only file system" in log
    for d in ("/tmp", "/usr", "/etc"):
        assert not os.path.exists(f"{d}/{marker}")


def test_host_secrets_are_not_visible(api, new_project):
    rec, log = run_build(api, new_project, "ls /root /home /var 2>&1; cat /etc/shadow 2>&1; env; exit 1")
    assert "No such file or directory" in log
    assert "GANTRY_STACK_FILE" not in log and "RAY_AUTH_TOKEN_PATH" not in log


def test_memory_limit(api, new_project):
    rec, log = run_build(api, new_project, 'python3 -c "x = bytearray(600 << 20); print(len(x))"')
    assert rec["buildStatus"] == "FAILED" and rec["error"] == "killed: memory limit exceeded"


def test_fork_bomb_is_contained(api, new_project):
    rec, log = run_build(api, new_project, "bomb() { bomb | bomb & }; bomb; sleep 3102", timeout=8)
    assert rec["buildStatus"] == "FAILED"
    assert "Cannot fork" in log or "Resource temporarily unavailable" in log or "timed out" in rec["error"]
    assert host_processes_matching("sleep 3102") == []


def test_timeout(api, new_project):
    rec, log = run_build(api, new_project, "sleep 3103", timeout=2)
    assert rec["buildStatus"] == "FAILED" and rec["error"] == "timed out after 2s"
    assert host_processes_matching("sleep 3103") == []


def test_seccomp_denies_namespace_and_kernel_syscalls(api, new_project):
    numbers = {n: denied_syscalls()[n] for n in ("unshare", "ptrace", "bpf")}
    rec, log = run_build(api, new_project, f"""python3 -c "
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
for name, nr in {sorted(numbers.items())}:
    r = libc.syscall(nr, 0, 0, 0)
    print(name, r, os.strerror(ctypes.get_errno()))
"; exit 1""")
    for name in numbers:
        assert f"{name} -1 Operation not permitted" in log


def test_escaping_symlink_in_output_is_refused(api, new_project):
    rec, log = run_build(api, new_project, "mkdir -p dist && ln -s /etc/passwd dist/passwd")
    assert rec["buildStatus"] == "FAILED" and "points outside the output" in rec["error"]
