"""A cgroup for a build, or for one project's services on a host: memory, pids and CPU limits
where the host lets us write them (v1 or v2), and a way to kill everything in it."""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from typing import Protocol

from gantry.settings import Settings



class Limits(Protocol):
    memory_bytes: int
    pids: int
    cpus: float


class Cgroup:
    """One cgroup `name` under `gantry/` in every controller we can write (v1), or in the
    unified hierarchy (v2). `has(controller)` is False where the host does not let us. Without
    `limits` the group only holds the processes together, so they can be stopped at once."""

    def __init__(self, name: str, limits: Limits | None = None, root: Path | None = None):
        root = root or Path(Settings().cgroup_root)   # GANTRY_CGROUP_ROOT
        self.v2 = (root / "cgroup.controllers").exists()
        self.dirs: dict[str, Path] = {}
        if self.v2:
            self._make("unified", root / "gantry" / name, {
                "memory.max": limits.memory_bytes, "memory.swap.max": 0, "pids.max": limits.pids,
                "cpu.max": f"{int(limits.cpus * 100000)} 100000"} if limits else {}, parent=root / "gantry")
        elif limits:
            self._make("memory", root / "memory/gantry" / name,
                       {"memory.limit_in_bytes": limits.memory_bytes})
            self._make("pids", root / "pids/gantry" / name, {"pids.max": limits.pids})
            self._make("cpu", root / "cpu/gantry" / name,
                       {"cpu.cfs_period_us": 100000, "cpu.cfs_quota_us": int(limits.cpus * 100000)})
        else:
            self._make("pids", root / "pids/gantry" / name, {})

    def _make(self, controller: str, path: Path, settings: dict, parent: Path | None = None) -> None:
        try:
            path.mkdir(parents=True, exist_ok=True)
            if parent is not None:  # v2: controllers must be enabled for children
                (parent / "cgroup.subtree_control").write_text("+memory +pids +cpu")
            for k, v in settings.items():
                try:
                    (path / k).write_text(str(v))
                except OSError:
                    if k not in ("memory.swap.max",):
                        raise
            self.dirs[controller] = path
        except OSError:
            try:
                path.rmdir()
            except OSError:
                pass

    def has(self, controller: str) -> bool:
        return "unified" in self.dirs or controller in self.dirs

    def procs_files(self) -> list[str]:
        return [str(d / "cgroup.procs") for d in self.dirs.values()]

    def oom_killed(self) -> bool:
        for d in self.dirs.values():
            for fname in ("memory.events", "memory.oom_control"):
                try:
                    for line in (d / fname).read_text().splitlines():
                        k, _, v = line.partition(" ")
                        if k == "oom_kill" and int(v) > 0:
                            return True
                except (OSError, ValueError):
                    pass
        return False

    def pids(self) -> set[int]:
        out = set()
        for d in self.dirs.values():
            try:
                out |= {int(p) for p in (d / "cgroup.procs").read_text().split()}
            except (OSError, ValueError):
                pass
        return out

    def kill_all(self) -> None:
        for d in self.dirs.values():
            try:
                if self.v2:
                    (d / "cgroup.kill").write_text("1")
                for pid in (d / "cgroup.procs").read_text().split():
                    os.kill(int(pid), signal.SIGKILL)
            except (OSError, ValueError):
                pass

    def remove(self) -> None:
        for d in self.dirs.values():
            for _ in range(50):
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:  # still busy with exiting processes
                    self.kill_all()
                    time.sleep(0.1)
