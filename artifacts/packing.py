"""Pack a build's output directory into a reproducible tar stream.

Same files in, same bytes out: entries sorted by path, owners and times zeroed, modes reduced to
0755/0644. Only regular files, directories and relative symlinks that stay inside the output are
allowed; anything else (absolute or escaping links, links through links, devices, fifos,
sockets) is refused.

The output was written by build code, and the packer runs as root: it reads the tree only through
directory fds with `O_NOFOLLOW` (see `safepath`), so no symlink in it is ever followed. A first
pass checks the whole tree (links, apparent size, file count) before a byte is written.
"""
from __future__ import annotations

import hashlib
import os
import stat
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Iterator

from gantry.artifacts.safepath import DIR_FLAGS, FILE_FLAGS, UnsafePath, check_links

MAX_DEPTH = 256


class UnsafeOutput(Exception):
    pass


class OutputTooLarge(UnsafeOutput):
    pass


@dataclass
class OutputLimits:
    max_bytes: int | None = None   # apparent size of all regular files (sparse files count in full)
    max_files: int | None = None   # entries of any kind


@dataclass
class _Scan:
    files: int = 0
    bytes: int = 0
    links: dict[str, str] = field(default_factory=dict)


class _HashingWriter:
    def __init__(self, out: BinaryIO):
        self.out, self.sha, self.size = out, hashlib.sha256(), 0

    def write(self, b: bytes) -> int:
        self.sha.update(b)
        self.size += len(b)
        return self.out.write(b)


def _walk(dir_fd: int, prefix: str = "", depth: int = 0) -> Iterator[tuple[str, os.stat_result, int, str]]:
    """(relative path, lstat, parent dir fd, name) of everything below dir_fd, depth first in
    sorted order (a directory, then its contents). Opens directories only with O_NOFOLLOW."""
    if depth > MAX_DEPTH:
        raise UnsafeOutput(f"{prefix} is nested deeper than {MAX_DEPTH} directories")
    for name in sorted(os.listdir(dir_fd)):
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        rel = prefix + name
        yield rel, st, dir_fd, name
        if stat.S_ISDIR(st.st_mode):
            sub = os.open(name, DIR_FLAGS, dir_fd=dir_fd)
            try:
                yield from _walk(sub, rel + "/", depth + 1)
            finally:
                os.close(sub)


def _scan(root_fd: int, limits: OutputLimits) -> _Scan:
    scan = _Scan()
    for rel, st, dir_fd, name in _walk(root_fd):
        scan.files += 1
        if stat.S_ISREG(st.st_mode):
            scan.bytes += st.st_size
        elif stat.S_ISLNK(st.st_mode):
            scan.links[rel] = os.readlink(name, dir_fd=dir_fd)
        elif not stat.S_ISDIR(st.st_mode):
            raise UnsafeOutput(f"{rel} is not a regular file, directory or symlink")
        if limits.max_files is not None and scan.files > limits.max_files:
            raise OutputTooLarge(f"output has more than {limits.max_files} files "
                                 f"(GANTRY_MAX_ARTIFACT_FILES={limits.max_files})")
        if limits.max_bytes is not None and scan.bytes > limits.max_bytes:
            raise OutputTooLarge(f"output is over {limits.max_bytes} bytes, counting sparse files in full "
                                 f"(GANTRY_MAX_ARTIFACT_BYTES={limits.max_bytes})")
    try:
        check_links(scan.links)
    except UnsafePath as e:
        raise UnsafeOutput(str(e).replace("outside the tree", "outside the output")) from None
    return scan


def _tarinfo(rel: str, st: os.stat_result) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(rel)
    ti.mtime, ti.uid, ti.gid, ti.uname, ti.gname = 0, 0, 0, "", ""
    if stat.S_ISDIR(st.st_mode):
        ti.type, ti.mode = tarfile.DIRTYPE, 0o755
    else:
        ti.type, ti.size = tarfile.REGTYPE, st.st_size
        ti.mode = 0o755 if st.st_mode & 0o111 else 0o644
    return ti


def pack(root: Path | int, out: BinaryIO, limits: OutputLimits | None = None) -> tuple[str, int]:
    """Write the tar of `root` (a path, or an open directory fd, which stays open) to `out`,
    streaming; returns ("sha256:<hex>", size)."""
    limits = limits or OutputLimits()
    root_fd = os.dup(root) if isinstance(root, int) else os.open(root, DIR_FLAGS)
    try:
        scan = _scan(root_fd, limits)
        w = _HashingWriter(out)
        with tarfile.open(fileobj=w, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            for rel, st, dir_fd, name in _walk(root_fd):
                if stat.S_ISLNK(st.st_mode):
                    ti = tarfile.TarInfo(rel)
                    ti.mtime, ti.uid, ti.gid, ti.uname, ti.gname = 0, 0, 0, "", ""
                    ti.type, ti.linkname, ti.mode = tarfile.SYMTYPE, scan.links.get(rel), 0o777
                    if ti.linkname is None or os.readlink(name, dir_fd=dir_fd) != ti.linkname:
                        raise UnsafeOutput(f"{rel} changed while it was packed")
                    tar.addfile(ti)
                elif stat.S_ISREG(st.st_mode):
                    _add_file(tar, rel, dir_fd, name)
                elif stat.S_ISDIR(st.st_mode):
                    tar.addfile(_tarinfo(rel, st))
                else:
                    raise UnsafeOutput(f"{rel} is not a regular file, directory or symlink")
        return "sha256:" + w.sha.hexdigest(), w.size
    finally:
        os.close(root_fd)


def _add_file(tar: tarfile.TarFile, rel: str, dir_fd: int, name: str) -> None:
    try:
        fd = os.open(name, FILE_FLAGS, dir_fd=dir_fd)
    except OSError as e:
        raise UnsafeOutput(f"{rel} could not be opened without following a link: {e.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeOutput(f"{rel} changed while it was packed")
        tar.addfile(_tarinfo(rel, st), f)
