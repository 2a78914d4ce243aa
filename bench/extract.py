"""Extraction on a host: the tar stream read across chunks and unpacked into a release.

    .venv/bin/python bench/extract.py [--size-mb 256] [--chunk-kb 4096] [--json]

Packs a tree of --size-mb of random files, cuts it into chunks of about --chunk-kb, and extracts
it through `artifacts.unpack.extract`, printing MB/s and the bytes the chunk reader moved in
memory per byte of artifact (bound: 3, see `_ChunkReader`). The reader before issue 12 is timed
on the same stream for comparison (it re-sliced the whole buffer on every read).
"""
from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import tarfile
import tempfile
import time
from pathlib import Path

from gantry.artifacts import unpack


class SlicingReader:
    """The chunk reader as it was before issue 12."""

    def __init__(self, chunks):
        self.chunks, self.buf, self.copied = chunks, b"", 0

    def read(self, n=-1):
        while n < 0 or len(self.buf) < n:
            nxt = next(self.chunks, None)
            if nxt is None:
                break
            self.copied += len(self.buf) + len(nxt)
            self.buf += nxt
        out, self.buf = (self.buf, b"") if n < 0 else (self.buf[:n], self.buf[n:])
        self.copied += len(out) + len(self.buf)
        return out


def stream(size: int, chunk: int) -> list[bytes]:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        left, i = size, 0
        while left > 0:
            n = min(left, 8 << 20)
            info = tarfile.TarInfo(f"f{i:04d}")
            info.size = n
            t.addfile(info, io.BytesIO(os.urandom(n)))
            left, i = left - n, i + 1
    data = buf.getvalue()
    return [data[o:o + chunk] for o in range(0, len(data), chunk)]


def run(reader_cls, chunks: list[bytes], dest: Path) -> tuple[float, float]:
    original = unpack._ChunkReader
    made = []
    unpack._ChunkReader = lambda it: made.append(reader_cls(it)) or made[-1]
    try:
        t0 = time.perf_counter()
        unpack.extract(iter(chunks), dest)
        seconds = time.perf_counter() - t0
    finally:
        unpack._ChunkReader = original
    return seconds, made[0].copied / sum(len(c) for c in chunks)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mb", type=int, default=256)
    ap.add_argument("--chunk-kb", type=int, default=4096)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    chunks = stream(a.size_mb << 20, a.chunk_kb << 10)
    total = sum(len(c) for c in chunks)
    work = Path(tempfile.mkdtemp(prefix="gantry-bench-extract-"))
    try:
        out = {"sizeBytes": total, "chunkBytes": a.chunk_kb << 10}
        for name, cls in (("new", unpack._ChunkReader), ("old", SlicingReader)):
            seconds, moved = run(cls, chunks, work / name)
            out[f"{name}MBps"] = round(total / seconds / 1e6, 1)
            out[f"{name}MovedPerByte"] = round(moved, 2)
            print(f"{name:>3} reader: {total / seconds / 1e6:8.1f} MB/s, {moved:7.2f} bytes moved per artifact byte"
                  + ("   (bound: 3)" if name == "new" else ""))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if a.json:
        print(json.dumps(out))


if __name__ == "__main__":
    main()
