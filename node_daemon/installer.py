"""Install a release on a host and switch to it.

Layout under the host's home: `releases/<buildID>/` (extracted safely from verified chunks) and
`current`, a symlink switched atomically (a new link renamed over the old one). The last
`keep` releases stay on disk for instant rollback. The repository's optional `[deploy] start`
and `health` commands (recorded by the build from its gantry.toml) run after the switch.

Release contents come from build code: markers are written without following links, and hooks
run as the project's own unprivileged uid and gid (`hook_user`) with a clean environment, so
nothing of the daemon's credentials (its environment, its files, its /proc) nor of another
project's (its releases, its processes) is within their reach. The project's directory and its
releases are `0750 root:<project gid>`. Each release's hooks and the service they start run in a
cgroup of their own (`node-<host>/<project>/<build>`): once a new release is healthy the others'
are stopped, and a release that fails is stopped itself. Hook output goes to
`.gantry-hooks.log` in the release; a failure reports a short reason.
"""
from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from gantry.artifacts.safepath import DIR_FLAGS, write_marker
from gantry.artifacts.unpack import extract
from gantry.cgroups import Cgroup

MARKER = ".complete"
HOOK_LOG = ".gantry-hooks.log"
HOOK_PATH = "/usr/local/bin:/usr/bin:/bin"


class InstallFailed(Exception):
    pass


@dataclass
class Installer:
    home: Path
    keep: int = 3
    command_timeout_s: float = 60.0   # the health command's limit
    start_grace_s: float = 2.0        # a start command that fails fails within this; one still running is the service
    hook_user: tuple[int, int] | None = None   # (uid, gid) hooks run as; None: the daemon's own
    group: str = ""                   # the cgroup its releases' services run under ("": none)

    @property
    def releases(self) -> Path:
        return self.home / "releases"

    @property
    def current(self) -> Path:
        return self.home / "current"

    def active(self) -> str | None:
        try:
            return os.readlink(self.current).rsplit("/", 1)[-1]
        except OSError:
            return None

    def installed(self, build_id: str) -> bool:
        try:   # the marker itself, never what a link of that name points at
            return stat.S_ISREG(os.lstat(self.releases / build_id / MARKER).st_mode)
        except OSError:
            return False

    def unpack(self, build_id: str, chunks: Iterator[bytes]) -> Path:
        """Extract a release (idempotent: an interrupted extraction is redone from scratch)."""
        dest = self.releases / build_id
        if self.installed(build_id):
            return dest
        shutil.rmtree(dest, ignore_errors=True)
        self.releases.mkdir(parents=True, exist_ok=True)
        os.chmod(self.home.parent, 0o711)   # projects/: each project passes to its own, lists none
        for d in (self.home, self.releases):
            self._close(d, 0o750)
        try:
            extract(chunks, dest, reserved=(MARKER, HOOK_LOG))
            self._close(dest, 0o750)
            fd = os.open(dest, DIR_FLAGS)
            try:
                write_marker(fd, MARKER)
            finally:
                os.close(fd)
        except BaseException:
            shutil.rmtree(dest, ignore_errors=True)
            raise
        return dest

    def _close(self, path: Path, mode: int) -> None:
        """`path` as root:<project gid> with `mode`: only the project's hooks (and root) enter."""
        if self.hook_user is not None and os.geteuid() == 0:
            os.lchown(path, 0, self.hook_user[1])
        os.chmod(path, mode)

    def switch(self, build_id: str) -> str | None:
        """Point `current` at the release atomically; returns the previous release."""
        if not self.installed(build_id):
            raise InstallFailed(f"release {build_id} is not installed")
        previous = self.active()
        tmp = self.home / f".current-{os.getpid()}"
        tmp.unlink(missing_ok=True)
        os.symlink(f"releases/{build_id}", tmp)
        os.replace(tmp, self.current)
        return previous

    def deactivate(self) -> None:
        """Point `current` nowhere: no release of the project runs here."""
        self.current.unlink(missing_ok=True)

    def run_hooks(self, build_id: str, start: str | None, health: str | None, host_id: str = "",
                  host_ip: str = "") -> None:
        """Run the repo's `[deploy] start` then `health` commands in the release directory, as
        the hook user, with only the build ID, the host ID and address (GANTRY_HOST_IP: where its
        app listens, and where Prometheus scrapes the project's `metricsPort`) and the release
        path in their environment. The start command runs detached in its own session: one still running after
        `start_grace_s` is taken to be the service and left running; one that exits non-zero
        sooner fails the install. Output of both goes to the release's hook log."""
        release = self.releases / build_id
        if not (start or health):
            return
        env = {"PATH": HOOK_PATH, "LANG": "C.UTF-8", "HOME": str(release), "GANTRY_RELEASE": str(release),
               "GANTRY_BUILD_ID": build_id, "GANTRY_HOST_ID": host_id, "GANTRY_HOST_IP": host_ip}
        fd = os.open(release, DIR_FLAGS)
        try:
            log = os.open(HOOK_LOG, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC,
                          0o640, dir_fd=fd)
        finally:
            os.close(fd)
        # as root: join the release's cgroup, then become the project's uid (gantry.launch)
        # -I: the release is the working directory, and nothing in it may shadow gantry's modules
        launcher = [sys.executable, "-I", "-m", "gantry.launch"]
        for procs in (self.cgroup(build_id).procs_files() if self.group else []):
            launcher += ["--cgroup-procs", procs]
        if self.hook_user is not None and self.hook_user[0] != os.geteuid():
            launcher += ["--uid", str(self.hook_user[0]), "--gid", str(self.hook_user[1])]
        try:
            for hook, cmd in (("start", start), ("health", health)):
                if cmd:
                    os.write(log, f"--- {hook}: {cmd}\n".encode())
                    self._run_hook(hook, launcher + ["--", "sh", "-c", cmd], release, env, log)
        finally:
            os.close(log)

    def cgroup(self, build_id: str) -> Cgroup:
        return Cgroup(f"{self.group}/{build_id}")

    def stop(self, build_id: str) -> None:
        """Stop every process a release's hooks started."""
        if self.group:
            group = self.cgroup(build_id)
            group.kill_all()
            group.remove()

    def stop_others(self, keep: str) -> None:
        """Stop the services of every release but `keep` (the one now healthy)."""
        for name in self.release_ids():
            if name != keep:
                self.stop(name)

    def _run_hook(self, hook: str, argv: list[str], release: Path, env: dict, log: int) -> None:
        proc = subprocess.Popen(argv, cwd=release, env=env, stdin=subprocess.DEVNULL,
                                stdout=log, stderr=log, start_new_session=True)
        if hook == "start":   # it may be the service itself: a start still running after the grace is left running
            try:
                code = proc.wait(timeout=self.start_grace_s)
            except subprocess.TimeoutExpired:
                threading.Thread(target=proc.wait, daemon=True).start()   # reap it whenever it ends
                return
            if code != 0:
                raise InstallFailed(f"start command exited with {code} (output in {HOOK_LOG})")
            return
        try:
            code = proc.wait(timeout=self.command_timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise InstallFailed(f"{hook} command timed out after {self.command_timeout_s:g}s "
                                f"(output in {HOOK_LOG})")
        if code != 0:
            raise InstallFailed(f"{hook} command exited with {code} (output in {HOOK_LOG})")

    def release_ids(self) -> list[str]:
        """The releases on disk: the active one first, then the newest first."""
        if not self.releases.exists():
            return []
        active = self.active()
        others = sorted((p for p in self.releases.iterdir() if p.is_dir() and p.name != active),
                        key=lambda p: p.stat().st_mtime, reverse=True)
        return ([active] if active and (self.releases / active).is_dir() else []) + [p.name for p in others]

    def prune(self) -> list[str]:
        """Keep the active release and the newest others up to `keep` in all."""
        doomed = self.release_ids()[self.keep:]
        for name in doomed:
            self.stop(name)
            shutil.rmtree(self.releases / name, ignore_errors=True)
        return doomed
