"""Pack a build's output directory into a reproducible tar stream.

Same files in, same bytes out: entries sorted by path, owners and times zeroed, modes reduced to
0755/0644. Only regular files, directories and relative symlinks that stay inside the output are
allowed; anything else (absolute or escaping links, devices, fifos, sockets) is refused.
"""
from __future__ import annotations

import hashlib
import os
import stat
import tarfile
from pathlib import Path
from typing import BinaryIO


class UnsafeOutput(Exception):
    pass


class _HashingWriter:
    def __init__(self, out: BinaryIO):
        self.out, self.sha, self.size = out, hashlib.sha256(), 0

    def write(self, b: bytes) -> int:
        self.sha.update(b)
        self.size += len(b)
        return self.out.write(b)


def _entries(root: Path):
    """Every path below root, depth first, in sorted order (a directory, then its contents)."""
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        path = Path(entry.path)
        yield path
        if entry.is_dir(follow_symlinks=False):
            yield from _entries(path)


def _tarinfo(root: Path, path: Path) -> tarfile.TarInfo:
    rel = path.relative_to(root).as_posix()
    st = path.lstat()
    ti = tarfile.TarInfo(rel)
    ti.mtime, ti.uid, ti.gid, ti.uname, ti.gname = 0, 0, 0, "", ""
    if stat.S_ISLNK(st.st_mode):
        target = os.readlink(path)
        resolved = os.path.normpath(os.path.join(os.path.dirname(rel), target))
        if os.path.isabs(target) or resolved == ".." or resolved.startswith("../"):
            raise UnsafeOutput(f"symlink {rel} -> {target} points outside the output")
        ti.type, ti.linkname, ti.mode = tarfile.SYMTYPE, target, 0o777
    elif stat.S_ISDIR(st.st_mode):
        ti.type, ti.mode = tarfile.DIRTYPE, 0o755
    elif stat.S_ISREG(st.st_mode):
        ti.type, ti.size = tarfile.REGTYPE, st.st_size
        ti.mode = 0o755 if st.st_mode & 0o111 else 0o644
    else:
        raise UnsafeOutput(f"{rel} is not a regular file, directory or symlink")
    return ti


def pack(root: Path, out: BinaryIO) -> tuple[str, int]:
    """Write the tar of `root` to `out`, streaming; returns ("sha256:<hex>", size)."""
    w = _HashingWriter(out)
    with tarfile.open(fileobj=w, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for path in _entries(root):
            ti = _tarinfo(root, path)
            if ti.isreg():
                with open(path, "rb") as f:
                    tar.addfile(ti, f)
            else:
                tar.addfile(ti)
    return "sha256:" + w.sha.hexdigest(), w.size
