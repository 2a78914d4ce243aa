"""Content-defined chunking (FastCDC) and BLAKE3 naming.

Boundaries depend on content, not offsets: an insertion changes the chunks around it and leaves
the rest named as before, so a rebuild that changes little moves little.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO, Iterator

import blake3
from pyfastcdc import FastCDC

MAX_AVG = 4 << 20  # pyfastcdc's limit for avg_size


@dataclass(frozen=True)
class ChunkRef:
    digest: str     # "blake3:<hex>"
    offset: int
    size: int


def digest_of(data: bytes | memoryview) -> str:
    return "blake3:" + blake3.blake3(data).hexdigest()


class ChunkCorrupt(Exception):
    def __init__(self, digest: str):
        super().__init__(f"chunk {digest} does not match its digest")
        self.digest = digest


def verified(digest: str, data: bytes) -> bytes:
    """`data`, if it is the chunk `digest` names; else ChunkCorrupt."""
    if digest_of(data) != digest:
        raise ChunkCorrupt(digest)
    return data


def chunker(avg_bytes: int) -> FastCDC:
    avg = max(256, min(MAX_AVG, avg_bytes))
    return FastCDC(avg, min_size=min(avg // 4, 1 << 20), max_size=min(avg * 4, 16 << 20))


def cut(stream: BinaryIO, avg_bytes: int) -> Iterator[tuple[ChunkRef, bytes]]:
    """Chunks of `stream` in order, each with its bytes (a copy: safe to keep)."""
    for c in chunker(avg_bytes).cut_stream(stream):
        data = bytes(c.data)
        yield ChunkRef(digest_of(data), c.offset, c.length), data
