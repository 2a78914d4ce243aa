"""Reassemble an artifact from its chunks and extract it safely.

Every chunk is checked against its digest. Extraction refuses what a hostile tar could use:
absolute paths, `..`, hard links, devices, fifos, links that leave the release directory, and
writing through a symlink.
"""
from __future__ import annotations

import os
import tarfile
from pathlib import Path
from typing import Callable, Iterator

from gantry.artifacts.chunking import verified
from gantry.artifacts.manifest import Manifest
from gantry.artifacts.safepath import UnsafePath, check_links


class UnsafeArchive(Exception):
    pass


def stream_chunks(manifest: Manifest, fetch: Callable[[str], bytes]) -> Iterator[bytes]:
    for c in manifest.chunks:
        yield verified(c.digest, fetch(c.digest))


class _ChunkReader:
    """The tar stream, read across chunks. Each byte is copied a bounded number of times (into
    the buffer, out of it, and at most once more when the consumed front is dropped), so
    extraction is linear in the artifact's size whatever sizes tarfile reads in."""

    def __init__(self, chunks: Iterator[bytes]):
        self.chunks, self.buf, self.pos = chunks, bytearray(), 0
        self.copied = 0   # bytes moved in memory so far

    def read(self, n: int = -1) -> bytes:
        while n < 0 or len(self.buf) - self.pos < n:
            nxt = next(self.chunks, None)
            if nxt is None:
                break
            if self.pos > len(self.buf) // 2:   # drop the consumed front before growing
                del self.buf[:self.pos]
                self.copied += len(self.buf)
                self.pos = 0
            self.buf += nxt
            self.copied += len(nxt)
        end = len(self.buf) if n < 0 else min(len(self.buf), self.pos + n)
        out = bytes(self.buf[self.pos:end])
        self.copied += len(out)
        self.pos = end
        return out


def _inside(root: Path, path: Path) -> bool:
    return path == root or root in path.parents


def _std_check(member: tarfile.TarInfo, root: Path) -> None:
    """The standard library's `data` filter, as a second line of defence behind our own checks."""
    try:
        tarfile.data_filter(member, str(root))
    except tarfile.FilterError as e:
        raise UnsafeArchive(f"{member.name!r}: {e}") from None


def extract(chunks: Iterator[bytes], dest: Path, reserved: tuple[str, ...] = ()) -> None:
    """Extract a gantry tar stream into `dest` (created; must not exist). `reserved` names may not
    appear at the top of the release (the installer's own files). After the last entry, every
    symlink must resolve inside the release without going through another link."""
    dest.mkdir(parents=True)
    os.chmod(dest, 0o755)
    root = dest.resolve()
    links: dict[str, str] = {}
    with tarfile.open(fileobj=_ChunkReader(chunks), mode="r|") as tar:
        for m in tar:
            name = m.name
            parts = Path(name).parts
            if name.startswith("/") or ".." in parts or not parts:
                raise UnsafeArchive(f"unsafe path {name!r}")
            if parts[0] in reserved:
                raise UnsafeArchive(f"{name!r} is a name the installer reserves")
            target = root / name
            parent = target.parent.resolve()  # resolves any symlinked directory on the way
            if not _inside(root, parent) or parent != root / Path(name).parent:
                raise UnsafeArchive(f"{name!r} would be written through a symlink")
            if m.isdir():
                _std_check(m, root)
                target.mkdir(exist_ok=True)
                os.chmod(target, 0o755, follow_symlinks=False)
            elif m.isreg():
                _std_check(m, root)
                src = tar.extractfile(m)
                with open(target, "xb") as f:
                    while block := src.read(1 << 20):
                        f.write(block)
                os.chmod(target, 0o755 if m.mode & 0o111 else 0o644)
            elif m.issym():
                link = m.linkname
                if link.startswith("/") or not _inside(root, (target.parent / link).resolve()):
                    raise UnsafeArchive(f"symlink {name!r} -> {link!r} leaves the release")
                _std_check(m, root)
                os.symlink(link, target)
                links[Path(name).as_posix()] = link
            else:
                raise UnsafeArchive(f"{name!r} is a {'hard link' if m.islnk() else 'special file'}")
    try:
        check_links(links)
    except UnsafePath as e:
        raise UnsafeArchive(str(e).replace("outside the tree", "outside the release")) from None
