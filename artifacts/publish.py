"""Publish a build's output: pack it as a tar stream, cut the stream into chunks, name each by
its BLAKE3 digest, upload the chunks the store lacks, then the manifest.

Streaming end to end: the tar is written into a pipe by one thread while the chunker reads the
other end, and at most `concurrency` chunks wait for upload at once, so memory stays at a few
chunks whatever the artifact's size.
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import blake3

from gantry.artifacts.blobstore import BlobStore, chunk_key, manifest_key
from gantry.artifacts.chunking import cut
from gantry.artifacts.manifest import Manifest
from gantry.artifacts.packing import OutputLimits, pack


@dataclass
class PublishStats:
    chunks_uploaded: int = 0
    bytes_uploaded: int = 0
    chunks_skipped: int = 0
    bytes_skipped: int = 0


class _Hashing:
    """A reader that hashes what passes through it."""

    def __init__(self, raw):
        self.raw, self.hash, self.size = raw, blake3.blake3(), 0

    def readinto(self, b) -> int:
        n = self.raw.readinto(b)
        if n:
            self.hash.update(memoryview(b)[:n])
            self.size += n
        return n


def publish(output: Path | int, store: BlobStore, avg_chunk_bytes: int, concurrency: int = 4,
            limits: OutputLimits | None = None) -> tuple[Manifest, PublishStats]:
    """`output` is a path or an open directory fd. Raises packing.UnsafeOutput for outputs that
    may not be shipped (before anything is uploaded when the tree breaks a rule)."""
    r_fd, w_fd = os.pipe()
    pack_error: list[BaseException] = []

    def packer():
        try:
            with open(w_fd, "wb", buffering=1 << 20) as w:
                pack(output, w, limits)
        except BaseException as e:  # surfaces below, after the reader sees EOF
            pack_error.append(e)

    stats, refs = PublishStats(), []
    lock = threading.Lock()
    slots = threading.BoundedSemaphore(concurrency * 2)   # chunks held in memory at once

    def upload(ref, data):
        try:
            written = store.put(chunk_key(ref.digest), data)
            with lock:
                if written:
                    stats.chunks_uploaded += 1
                    stats.bytes_uploaded += ref.size
                else:
                    stats.chunks_skipped += 1
                    stats.bytes_skipped += ref.size
        finally:
            slots.release()

    t = threading.Thread(target=packer, daemon=True, name="pack")
    t.start()
    futures: list[Future] = []
    # Leaving this block closes the pipe's read end, so the packer ends even if an upload failed.
    with open(r_fd, "rb", buffering=0) as raw, ThreadPoolExecutor(concurrency) as pool:
        reader = _Hashing(raw)
        for ref, data in cut(reader, avg_chunk_bytes):
            refs.append(ref)
            slots.acquire()
            futures.append(pool.submit(upload, ref, data))
            for f in [f for f in futures if f.done()]:
                f.result()  # an upload error stops the publish now
            futures = [f for f in futures if not f.done()]
        for f in futures:
            f.result()
    t.join()
    if pack_error:
        raise pack_error[0]
    manifest = Manifest(size=reader.size, digest="blake3:" + reader.hash.hexdigest(), chunks=tuple(refs))
    store.put(manifest_key(manifest.manifest_digest), manifest.to_bytes())  # last: its chunks are all in
    return manifest, stats
