"""A host's verified chunks on disk, shared by every release.

A chunk enters the cache only after its digest is checked, and is written atomically, so what
the cache holds survives a crash and is never re-downloaded: after a restart `missing()` is the
resume point. Chunks of earlier releases are reused by later ones (a delta deploy).
"""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

import blake3

from gantry.artifacts.atomic import write_atomically
from gantry.artifacts.chunking import ChunkCorrupt, verified
from gantry.artifacts.manifest import DIGEST_RE, Manifest


class ChunkCache:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, digest: str) -> Path:
        return Path(self._name(digest))

    def _name(self, digest: str) -> str:
        # A digest names a file: only the one form, or "/etc:<hex>" would name one anywhere.
        if not isinstance(digest, str) or not DIGEST_RE.match(digest):
            raise ValueError(f"not a chunk digest (blake3:<64 hex>): {digest[:80]!r}")
        hexd = digest[len("blake3:"):]
        return f"{self.root}/blake3/{hexd[:2]}/{hexd}"   # a string, not a Path: a heartbeat asks for every chunk

    def has(self, digest: str) -> bool:
        return os.path.isfile(self._name(digest))

    def put(self, digest: str, data: bytes) -> None:
        """Store a chunk after checking it; raises ChunkCorrupt if it is not what it claims."""
        verified(digest, data)
        path = self._path(digest)
        if not path.exists():
            write_atomically(path, data, temp_prefix=".part-")

    @contextmanager
    def writer(self, digest: str) -> Iterator[Callable[[bytes], None]]:
        """Write a chunk as it streams in, hashing each piece on its way to disk; on leaving
        the block it is checked and renamed into place (ChunkCorrupt if it does not match, and
        nothing is kept). Use: `with cache.writer(d) as write: write(piece) ...`."""
        path = self._path(digest)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".part-")
        hasher = blake3.blake3()
        try:
            with os.fdopen(fd, "wb") as f:
                def write(piece: bytes) -> None:
                    hasher.update(piece)
                    f.write(piece)
                yield write
                if "blake3:" + hasher.hexdigest() != digest:
                    raise ChunkCorrupt(digest)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            Path(tmp).unlink(missing_ok=True)

    def get(self, digest: str) -> bytes:
        return self._path(digest).read_bytes()

    def open(self, digest: str) -> BinaryIO:
        """The chunk's file, to serve from without reading it whole."""
        return open(self._path(digest), "rb")

    def missing(self, manifest: Manifest) -> list:
        """The manifest's unique chunks not held yet, in order."""
        return [c for c in manifest.unique_chunks() if not self.has(c.digest)]

    def held(self, manifest: Manifest) -> set[str]:
        return {c.digest for c in manifest.unique_chunks() if self.has(c.digest)}

    def prune(self, keep: list[Manifest], max_bytes: int = 0) -> int:
        """Delete chunks no kept manifest uses; returns how many. With `max_bytes`, keep only
        the chunks of the first manifests (in `keep`'s order) that fit; the first always stays."""
        wanted: set[str] = set()
        size = 0
        for i, m in enumerate(keep):
            new = [c for c in m.unique_chunks() if c.digest not in wanted]
            grown = size + sum(c.size for c in new)
            if i and max_bytes and grown > max_bytes:
                break
            wanted |= {c.digest for c in new}
            size = grown
        removed = 0
        for path in self.root.glob("*/*/*"):
            if path.name.startswith(".part-"):
                path.unlink(missing_ok=True)
                continue
            if f"{path.parent.parent.name}:{path.name}" not in wanted:
                path.unlink(missing_ok=True)
                removed += 1
        return removed
