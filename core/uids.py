"""Reserved uid ranges, so that tenants sharing a machine cannot reach each other.

- Each concurrent build on a builder runs as a uid of its own, leased from the settings'
  `build_uids` (600000-600999 by default) for the attempt's life (a `flock` on one file per uid: a crashed worker's lease ends with it).
- Each project on a host runs its hooks and services as a uid and gid of its own, from
  `PROJECT_UIDS`, kept in the host's `project-uids.json`.

No account may use these numbers: one that `/etc/passwd` or `/etc/group` names is skipped, and
the node daemon refuses a hook user inside either range. A uid shared with anything else would
let that process read the build's environment through /proc, or signal it.
"""
from __future__ import annotations

import fcntl
import grp
import json
import os
import pwd
import random
import signal
import stat
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class UidRange:
    base: int
    count: int

    def __contains__(self, uid: int) -> bool:
        return self.base <= uid < self.base + self.count

    def __iter__(self):
        return iter(range(self.base, self.base + self.count))

    def __str__(self) -> str:
        return f"{self.base}-{self.base + self.count - 1}"


PROJECT_UIDS = UidRange(610_000, 10_000)


class NoFreeUid(Exception):
    pass


def reserved(uid: int, gid: int, build_uids: UidRange) -> str | None:
    """Whose reserved range (uid, gid) falls in, if any: no account may run as one of them."""
    for uids, whose in ((build_uids, "builds"), (PROJECT_UIDS, "projects")):
        if uid in uids or gid in uids:
            return f"{whose} ({uids})"
    return None


def unused(uid: int) -> bool:
    """No account or group has this number."""
    for lookup in (pwd.getpwuid, grp.getgrgid):
        try:
            lookup(uid)
            return False
        except KeyError:
            pass
    return True


def private_dir(path: Path) -> Path:
    """`path` as a root-only directory (created if missing); refuses a link or one others own."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
        raise NoFreeUid(f"{path} is not a directory of uid {os.geteuid()}")
    os.chmod(path, 0o700)
    return path


class UidLease:
    """One uid of a range, held until `release()` (or the process's death)."""

    def __init__(self, uid: int, fd: int):
        self.uid, self._fd = uid, fd

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> "UidLease":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def lease(uids: UidRange, lock_dir: Path, rng: random.Random | None = None) -> UidLease:
    """A uid of `uids` that no other holder of `lock_dir` has now. Whatever still runs as it (a
    build whose worker was killed before its sandbox) is killed first, so a build never meets a
    process of an earlier one."""
    private_dir(lock_dir)
    start = (rng or random.Random()).randrange(uids.count)
    for i in range(uids.count):
        uid = uids.base + (start + i) % uids.count
        if not unused(uid):
            continue
        fd = os.open(lock_dir / f"{uid}.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        kill_uid(uid)
        return UidLease(uid, fd)
    raise NoFreeUid(f"every uid of {uids} is in use")


def processes_of(uid: int) -> list[int]:
    """Pids whose real or effective uid is `uid`."""
    pids = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/status", "rb") as f:
                for line in f:
                    if line.startswith(b"Uid:"):
                        real, effective = (int(x) for x in line.split()[1:3])
                        if uid in (real, effective):
                            pids.append(int(entry.name))
                        break
        except (OSError, ValueError):
            continue
    return pids


def kill_uid(uid: int) -> None:
    for pid in processes_of(uid):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


class ProjectUids:
    """A host's uid and gid per project (the same number for both), kept in a root-only file so
    a restarted agent gives each project the one its files and processes already have."""

    def __init__(self, path: Path, uids: UidRange = PROJECT_UIDS):
        self.path, self.uids = path, uids
        try:
            self.by_project: dict[str, int] = json.loads(path.read_text())
        except FileNotFoundError:
            self.by_project = {}

    def of(self, project: str) -> int:
        uid = self.by_project.get(project)
        if uid is not None:
            return uid
        taken = set(self.by_project.values())
        uid = next((u for u in self.uids if u not in taken and unused(u)), None)
        if uid is None:
            raise NoFreeUid(f"every uid of {self.uids} is given to a project")
        self.by_project[project] = uid
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(self.by_project, f)
        os.replace(tmp, self.path)
        return uid
