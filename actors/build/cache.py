"""A project's build cache: directories a build keeps for the next one (a compiler cache, fetched
wheels), stored as artifacts are, content-defined chunks in the primary blob store, so an
unchanged cache uploads nothing and a slightly changed one only its new chunks.

Keyed per project and branch; a branch with no cache yet starts from the default branch's. Only a
SUCCEEDED build saves. The trees are build-controlled: they are packed and placed with the same
no-symlink rules as a build's output (`open_beneath`, `extract`), as root, while no build code runs.
File times are not kept (the pack zeroes them): a cache suits tools that key by content, such as
ccache, pip or go, more than make's object files.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from gantry.artifacts.blobstore import BlobStore, chunk_key, manifest_key
from gantry.artifacts.manifest import Manifest
from gantry.artifacts.packing import OutputLimits, UnsafeOutput
from gantry.artifacts.publish import publish
from gantry.artifacts.safepath import DIR_FLAGS, UnsafePath, open_beneath, relative_parts
from gantry.artifacts.unpack import extract, stream_chunks
from gantry.state.caches import Caches


@dataclass
class CacheReport:
    restoredBytes: int = 0
    savedBytes: int = 0       # uploaded: chunks the store did not hold yet
    hit: bool = False
    branch: str | None = None   # whose cache was restored


@dataclass
class Roots:
    """Where a cache path lives on the builder: `~/x` under `home`, `x` under `workspace`."""
    workspace: Path
    home: Path

    def split(self, path: str) -> tuple[Path, str]:
        return (self.home, path[2:]) if path.startswith("~/") else (self.workspace, path)


class BuildCache:
    def __init__(self, caches: Caches, store: BlobStore, avg_chunk_bytes: int, limits: OutputLimits,
                 log: Callable[[str], None], concurrency: int = 4):
        self.caches, self.store, self.avg, self.limits = caches, store, avg_chunk_bytes, limits
        self.log, self.concurrency = log, concurrency

    def restore(self, project: str, branches: list[str], paths: tuple[str, ...], roots: Roots,
                scratch: Path, report: CacheReport) -> None:
        """Place the first of `branches` that has a cache; a path that the checkout already has,
        or whose cache cannot be read, is left as it is (the build then runs colder)."""
        for branch in dict.fromkeys(branches):
            entry = self.caches.get(project, branch)
            if entry:
                break
        else:
            self.log("cache: none saved yet for this branch or the default branch")
            return
        report.branch = branch
        self.caches.touch(project, branch, entry)
        for i, path in enumerate(paths):
            digest = entry["paths"].get(path)
            if digest is None:
                continue
            try:
                manifest = Manifest.from_bytes(self.store.get(manifest_key(digest)), expect_digest=digest)
                tmp = scratch / f"cache-{i}"
                extract(stream_chunks(manifest, lambda d: self.store.get(chunk_key(d))), tmp)
                _place(roots, path, tmp)
            except Exception as e:   # a planted link, a missing chunk, a store outage: the build runs colder
                self.log(f"cache: {path} not restored: {type(e).__name__}: {e}")
                shutil.rmtree(scratch / f"cache-{i}", ignore_errors=True)
                continue
            report.restoredBytes += manifest.size
            report.hit = True
        self.log(f"cache: restored {report.restoredBytes} bytes from branch {branch}" if report.hit
                 else f"cache: branch {branch}'s cache holds none of {list(paths)}")

    def save(self, project: str, branch: str, paths: tuple[str, ...], roots: Roots, build_id: str,
             report: CacheReport) -> None:
        saved: dict[str, str] = {}
        size = 0
        for path in paths:
            root, rel = roots.split(path)
            try:
                root_fd = os.open(root, DIR_FLAGS)
                try:
                    fd = open_beneath(root_fd, rel)
                finally:
                    os.close(root_fd)
            except (FileNotFoundError, NotADirectoryError):
                self.log(f"cache: {path} is not a directory after the build; not saved")
                continue
            except UnsafePath as e:
                self.log(f"cache: {path} not saved: {e}")
                continue
            try:
                manifest, stats = publish(fd, self.store, self.avg, self.concurrency, self.limits)
            except UnsafeOutput as e:
                self.log(f"cache: {path} not saved: {e}")
                continue
            finally:
                os.close(fd)
            saved[path] = manifest.manifest_digest
            size += manifest.size
            report.savedBytes += stats.bytes_uploaded
            self.log(f"cache: saved {path}: {manifest.size} bytes, {stats.bytes_uploaded} of them new")
        if saved:
            self.caches.put(project, branch, saved, build_id, size)


def _place(roots: Roots, path: str, tmp: Path) -> None:
    """Move the extracted `tmp` to `path`, creating its parents, following no symlink."""
    root, rel = roots.split(path)
    parts = relative_parts(rel)
    fd = os.open(root, DIR_FLAGS)
    try:
        for part in parts[:-1]:
            try:
                os.mkdir(part, 0o755, dir_fd=fd)
            except FileExistsError:
                pass
            nfd = os.open(part, DIR_FLAGS, dir_fd=fd)   # O_NOFOLLOW: a planted link is refused
            os.close(fd)
            fd = nfd
        try:
            os.stat(parts[-1], dir_fd=fd, follow_symlinks=False)
            raise FileExistsError(f"{path} is in the checkout already")
        except FileNotFoundError:
            pass
        os.rename(tmp, parts[-1], dst_dir_fd=fd)
    finally:
        os.close(fd)
