"""Install a release on a host and switch to it.

Layout under the host's home: `releases/<buildID>/` (extracted safely from verified chunks) and
`current`, a symlink switched atomically (a new link renamed over the old one). The last
`keep` releases stay on disk for instant rollback. The repository's optional `[deploy] start`
and `health` commands (recorded by the build from its gantry.toml) run after the switch.

Release contents come from build code: markers are written without following links, and hooks
run as an unprivileged user (`hook_user`) with a clean environment, so nothing of the daemon's
credentials (its environment, its files, its /proc) is within their reach. Their output goes to
`.gantry-hooks.log` in the release; a failure reports a short reason.
"""
from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from gantry.artifacts.safepath import DIR_FLAGS, write_marker
from gantry.artifacts.unpack import extract

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
        os.chmod(self.releases, 0o755)   # the hook user reads releases
        try:
            extract(chunks, dest, reserved=(MARKER, HOOK_LOG))
            fd = os.open(dest, DIR_FLAGS)
            try:
                write_marker(fd, MARKER)
            finally:
                os.close(fd)
        except BaseException:
            shutil.rmtree(dest, ignore_errors=True)
            raise
        return dest

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

    def run_hooks(self, build_id: str, start: str | None, health: str | None, host_id: str = "") -> None:
        """Run the repo's `[deploy] start` then `health` commands in the release directory, as
        the hook user, with only the build ID, the host ID and the release path in their
        environment. The start command runs detached in its own session: one still running after
        `start_grace_s` is taken to be the service and left running; one that exits non-zero
        sooner fails the install. Output of both goes to the release's hook log."""
        release = self.releases / build_id
        if not (start or health):
            return
        env = {"PATH": HOOK_PATH, "LANG": "C.UTF-8", "HOME": str(release), "GANTRY_RELEASE": str(release),
               "GANTRY_BUILD_ID": build_id, "GANTRY_HOST_ID": host_id}
        fd = os.open(release, DIR_FLAGS)
        try:
            log = os.open(HOOK_LOG, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC,
                          0o644, dir_fd=fd)
        finally:
            os.close(fd)
        user = {}
        if self.hook_user is not None and self.hook_user[0] != os.geteuid():
            user = {"user": self.hook_user[0], "group": self.hook_user[1], "extra_groups": []}
        try:
            for hook, cmd in (("start", start), ("health", health)):
                if cmd:
                    os.write(log, f"--- {hook}: {cmd}\n".encode())
                    self._run_hook(hook, cmd, release, env, log, user)
        finally:
            os.close(log)

    def _run_hook(self, hook: str, cmd: str, release: Path, env: dict, log: int, user: dict) -> None:
        proc = subprocess.Popen(["sh", "-c", cmd], cwd=release, env=env, stdin=subprocess.DEVNULL,
                                stdout=log, stderr=log, start_new_session=True, **user)
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
            shutil.rmtree(self.releases / name, ignore_errors=True)
        return doomed
