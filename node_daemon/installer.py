"""Install a release on a host and switch to it.

Layout under the host's home: `releases/<buildID>/` (extracted safely from verified chunks) and
`current`, a symlink switched atomically (a new link renamed over the old one). The last
`keep` releases stay on disk for instant rollback. The repository's optional `[deploy] start`
and `health` commands (recorded by the build from its gantry.toml) run after the switch.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from gantry.artifacts.unpack import extract


class InstallFailed(Exception):
    pass


@dataclass
class Installer:
    home: Path
    keep: int = 3
    command_timeout_s: float = 60.0

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
        return (self.releases / build_id / ".complete").exists()

    def unpack(self, build_id: str, chunks: Iterator[bytes]) -> Path:
        """Extract a release (idempotent: an interrupted extraction is redone from scratch)."""
        dest = self.releases / build_id
        if self.installed(build_id):
            return dest
        shutil.rmtree(dest, ignore_errors=True)
        self.releases.mkdir(parents=True, exist_ok=True)
        extract(chunks, dest)
        (dest / ".complete").touch()
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

    def run_hooks(self, build_id: str, start: str | None, health: str | None,
                  env: dict[str, str] | None = None) -> None:
        """Run the repo's `[deploy] start` then `health` commands in the release directory."""
        release = self.releases / build_id
        for hook, cmd in (("start", start), ("health", health)):
            if not cmd:
                continue
            try:
                r = subprocess.run(["sh", "-c", cmd], cwd=release, capture_output=True, text=True,
                                   timeout=self.command_timeout_s,
                                   env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                                        "GANTRY_RELEASE": str(release), **(env or {})})
            except subprocess.TimeoutExpired:
                raise InstallFailed(f"{hook} command timed out after {self.command_timeout_s:g}s")
            if r.returncode != 0:
                raise InstallFailed(f"{hook} command exited with {r.returncode}: "
                                    f"{(r.stderr or r.stdout).strip()[-300:]}")

    def prune(self) -> list[str]:
        """Keep the active release and the newest others up to `keep` in all."""
        if not self.releases.exists():
            return []
        active = self.active()
        others = sorted((p for p in self.releases.iterdir() if p.is_dir() and p.name != active),
                        key=lambda p: p.stat().st_mtime, reverse=True)
        doomed = others[max(0, self.keep - (1 if active else 0)):]
        for p in doomed:
            shutil.rmtree(p, ignore_errors=True)
        return [p.name for p in doomed]
