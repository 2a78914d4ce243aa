"""Run one build command in a bubblewrap sandbox.

Isolation: read-only system directories and nothing else of the host (no /root, /home, /var,
no gantry home), a writable workspace, $HOME and private /tmp, no network (own netns with only
loopback; a fetch step also gets gantry's egress proxy there, see `proxy.py`), own
PID/IPC/UTS/user namespaces, an unprivileged uid of its own (`gantry.uids`), a clean environment, a seccomp deny list, and
it dies with its parent. Limits: memory, pids and CPU through cgroups where the host lets us
write them (v1 or v2), rlimits otherwise; a wall-clock timeout; a cap on any one file's size.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

from gantry.cgroups import Cgroup
from gantry.actors.build.sandbox.limits import Limits, Result
from gantry.actors.build.sandbox.seccomp import build_filter

ETC_FILES = ["ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives", "passwd", "group",
             "nsswitch.conf", "localtime", "ssl", "ca-certificates", "os-release", "mime.types"]
SYSTEM_DIRS = ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"]
SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin"
HOME = "/home/build"
PROXY_SOCKET = "/run/gantry/proxy.sock"
PROXY_PORT = 3128
# A fetch step: socat relays 127.0.0.1:3128 in the sandbox's network namespace to the proxy's
# socket, the only way out. The step starts once the relay accepts a connection.
RELAY = (f"socat TCP-LISTEN:{PROXY_PORT},bind=127.0.0.1,fork,reuseaddr UNIX-CONNECT:{PROXY_SOCKET} &\n"
         "n=0\n"
         f"until socat -u /dev/null TCP:127.0.0.1:{PROXY_PORT} 2>/dev/null; do\n"
         "  n=$((n+1)); if [ $n -ge 200 ]; then echo 'gantry: the proxy relay did not start' >&2; exit 125; fi\n"
         "  sleep 0.05\n"
         "done\n"
         'exec sh -c "$1"\n')
PROXY_ENV = {k: f"http://127.0.0.1:{PROXY_PORT}" for k in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")}


def _bwrap_args(workspace: Path, status_fd: int, home: Path | None, proxy_socket: Path | None) -> list[str]:
    # --disable-userns: no nested user namespace, where a build would hold every capability
    args = ["bwrap", "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent",
            "--new-session", "--cap-drop", "ALL", "--hostname", "gantry-build", "--json-status-fd", str(status_fd)]
    for d in SYSTEM_DIRS:
        p = Path(d)
        if p.is_symlink():
            args += ["--symlink", os.readlink(p), d]
        elif p.is_dir():
            args += ["--ro-bind", d, d]
    for name in ETC_FILES:
        args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",
             "--bind", str(workspace), "/workspace"]
    if home is not None:
        args += ["--bind", str(home), HOME]
    if proxy_socket is not None:
        args += ["--ro-bind", str(proxy_socket), PROXY_SOCKET]
    args += ["--remount-ro", "/",
             "--chdir", "/workspace"]
    return args


def _env_args(env: dict[str, str]) -> bytes:
    """`--clearenv` then `--setenv` options for bwrap's `--args FD`: NUL-separated, so values
    never reach a command line that `ps` shows."""
    parts = ["--clearenv"]
    for k, v in env.items():
        if "\0" in k or "\0" in v:
            raise ValueError(f"environment variable {k!r} holds a NUL byte")
        parts += ["--setenv", k, v]
    return b"".join(p.encode() + b"\0" for p in parts)


class Sandbox:
    def __init__(self, name: str, workspace: Path, limits: Limits, uid: int, home: Path | None = None):
        self.name, self.workspace, self.limits, self.uid, self.home = name, workspace, limits, uid, home
        self._proc: subprocess.Popen | None = None
        self._cgroup: Cgroup | None = None

    def run(self, command: str, env: dict[str, str], on_output: Callable[[bytes], None],
            should_cancel: Callable[[], bool] = lambda: False, poll_s: float = 0.5,
            proxy_socket: Path | None = None) -> Result:
        """Run `sh -c command` in /workspace; blocks until it ends, is cancelled or times out.
        With `proxy_socket`, the command reaches the network through that proxy alone."""
        self._chown(self.workspace)
        if self.home is not None:
            self._chown(self.home)
        env = {"PATH": SANDBOX_PATH, "HOME": HOME if self.home else "/tmp", "LANG": "C.UTF-8", "TMPDIR": "/tmp",
               **env, **(PROXY_ENV if proxy_socket else {})}
        cg = self._cgroup = Cgroup(self.name, self.limits)
        rlimits = ["core=0", f"fsize={self.limits.file_bytes}", "nofile=4096"]
        if not cg.has("memory"):
            rlimits.append(f"as={self.limits.memory_bytes}")
        if not cg.has("pids"):
            rlimits.append(f"nproc={self.limits.pids}")
        seccomp_file = self.workspace.parent / f".{self.name}.bpf"
        args_file = self.workspace.parent / f".{self.name}.args"
        _write_private(seccomp_file, build_filter())
        _write_private(args_file, _env_args(env))
        status_r, status_w = os.pipe()
        launcher = [sys.executable, "-m", "gantry.launch", "--uid", str(self.uid),
                    "--gid", str(self.uid), "--seccomp-file", str(seccomp_file), "--args-file", str(args_file)]
        for f in cg.procs_files():
            launcher += ["--cgroup-procs", f]
        for r in rlimits:
            launcher += ["--rlimit", r]
        shell = ["sh", "-c", RELAY, "fetch", command] if proxy_socket else ["sh", "-c", command]
        argv = launcher + ["--"] + _bwrap_args(self.workspace, status_w, self.home, proxy_socket) + shell
        result = Result()
        try:
            try:
                self._proc = subprocess.Popen(
                    argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                    pass_fds=(status_w,), start_new_session=True,
                    env={"PATH": os.environ.get("PATH", SANDBOX_PATH), "PYTHONPATH": os.environ.get("PYTHONPATH", "")})
            except BaseException:
                os.close(status_r)
                raise
            finally:
                os.close(status_w)
            status_lines: list[dict] = []
            readers = [threading.Thread(target=_pump, args=(self._proc.stdout, on_output), daemon=True),
                       threading.Thread(target=_read_status, args=(status_r, status_lines), daemon=True)]
            for t in readers:
                t.start()
            deadline = time.monotonic() + self.limits.timeout_s
            while self._proc.poll() is None:
                if should_cancel():
                    result.cancelled = True
                    break
                if time.monotonic() > deadline:
                    result.timed_out = True
                    break
                try:
                    self._proc.wait(timeout=poll_s)
                except subprocess.TimeoutExpired:
                    pass
            self.kill()
            self._proc.wait()
            for t in readers:
                t.join(timeout=5)
            for s in status_lines:  # bubblewrap reports the command's exit code, if it ran
                if "exit-code" in s:
                    result.exit_code = s["exit-code"]
            if result.sandbox_failed:
                result.setup_error = f"bubblewrap exited with {self._proc.returncode} (see the log)"
            result.oom_killed = cg.oom_killed()
        finally:
            cg.remove()
            seccomp_file.unlink(missing_ok=True)
            args_file.unlink(missing_ok=True)
        return result

    def kill(self) -> None:
        """Kill everything in the sandbox: bubblewrap's process group, then the cgroups."""
        if self._proc is not None and self._proc.poll() is None:
            try:
                os.killpg(self._proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self._cgroup is not None:
            self._cgroup.kill_all()

    def _chown(self, top: Path) -> None:
        for root, dirs, files in os.walk(top):
            for n in dirs + files:
                os.lchown(os.path.join(root, n), self.uid, self.uid)
        os.lchown(top, self.uid, self.uid)


def _write_private(path: Path, data: bytes) -> None:
    """A root-only file next to the workspace (never inside it: the build owns that)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _pump(stream, on_output: Callable[[bytes], None]) -> None:
    while True:
        chunk = stream.read1(65536) if hasattr(stream, "read1") else stream.read(65536)
        if not chunk:
            return
        on_output(chunk)


def _read_status(fd: int, out: list[dict]) -> None:
    with os.fdopen(fd, "rb") as f:
        for line in f:
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
