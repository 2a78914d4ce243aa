"""Healing a region's blob store from the primary's copy.

A chunk's key is its digest, so any copy can be checked on its own, with no index: `repair_chunk`
re-copies one chunk whose regional copy is missing or does not match (a host that got bad bytes
from its regional store asks for it through its coordinator), and `Scrubber` walks a region's
chunks at a bounded rate and repairs what it finds.
"""
from __future__ import annotations

import logging
import time
from typing import Callable

from gantry.actors import metrics
from gantry.artifacts.blobstore import BlobNotFound, BlobStore, chunk_key, digest_of_key
from gantry.artifacts.chunking import digest_of
from gantry.artifacts.manifest import DIGEST_RE
from gantry.artifacts.chunking import verified

log = logging.getLogger("gantry.repair")


def repair_chunk(region: str, primary: BlobStore, target: BlobStore, digest: str, found_by: str) -> bool:
    """Copy `digest` from the primary into `target` if target's copy is missing or bad. Returns
    True if it repaired something. The primary's copy is verified before it is written."""
    if not DIGEST_RE.match(digest):
        raise ValueError(f"not a chunk digest: {digest[:80]!r}")
    key = chunk_key(digest)
    try:
        if digest_of(target.get(key)) == digest:
            return False
    except BlobNotFound:
        pass
    target.replace(key, verified(digest, primary.get(key)))
    metrics.store_repairs().inc(tags={"region": region, "found_by": found_by})
    log.warning("repaired chunk %s in %s (found by %s)", digest, region, found_by)
    return True


class Scrubber:
    """Re-verifies every chunk of one region's store, at most `chunks_per_s`, repairing bad ones."""

    def __init__(self, region: str, primary: BlobStore, target: BlobStore, chunks_per_s: float,
                 sleep: Callable[[float], None] = time.sleep):
        self.region, self.primary, self.target = region, primary, target
        self.chunks_per_s, self.sleep = chunks_per_s, sleep

    def run_once(self) -> tuple[int, int]:
        """One pass over the store; returns (chunks checked, chunks repaired)."""
        checked = repaired = 0
        for key in self.target.list("chunks/"):
            digest = digest_of_key(key)
            if digest is None or not DIGEST_RE.match(digest):
                continue
            try:
                if digest_of(self.target.get(key)) != digest:
                    repaired += repair_chunk(self.region, self.primary, self.target, digest, "scrubber")
            except BlobNotFound:
                pass
            checked += 1
            self.sleep(1 / self.chunks_per_s)
        return checked, repaired
