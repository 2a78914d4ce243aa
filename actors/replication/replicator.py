"""Replication of artifacts into one region's blob store.

`Replicator` is plain logic: it takes the region's due jobs from Redis, asks which chunks the
region lacks, moves only those (through `fetch`, which in the stack carries them from the primary
region through the Ray object store), verifies each digest, writes it, and writes the manifest
last. A job interrupted anywhere resumes from what the region already holds.
"""
from __future__ import annotations

import logging
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Iterable, Iterator

from gantry.actors import metrics
from gantry.state import State
from gantry.artifacts.blobstore import BlobStore, chunk_key, manifest_key
from gantry.artifacts.chunking import ChunkRef
from gantry.artifacts.manifest import BadManifest, Manifest
from gantry.artifacts.chunking import ChunkCorrupt, verified
from gantry.statuses import BuildStatus, ReplicationStatus
from gantry.settings import Settings

log = logging.getLogger("gantry.replicator")

# Yields (chunk, bytes) for the chunks asked for, in order, with bounded bytes in flight.
Fetch = Callable[[list[ChunkRef]], Iterator[tuple[ChunkRef, bytes]]]


SOURCE_LEASE_S = 120.0     # a copy's claim on its source, renewed every 8 chunks
WAIT_FOR_SOURCE_MS = 1000   # a job whose holders all serve their share looks again this much later

# a job copies a build still deploying, or a SUCCEEDED one into a region that joined later
COPYABLE = (BuildStatus.DEPLOYING, BuildStatus.SUCCEEDED)


class _Stop(Exception):
    """The build left DEPLOYING (cancelled) while its job ran."""


class Replicator:
    def __init__(self, region: str, state: State, primary: BlobStore, target: BlobStore,
                 fetch: Fetch, settings: Settings, primary_region: str = "",
                 sources: Callable[[str], Fetch] | None = None):
        """`fetch` carries chunks from the primary store. With `sources` (region -> a Fetch from
        its store) replication is a tree: a copy comes from whichever region holding the build
        `replica_sources.pick` names, `primary_region` being the primary's name."""
        self.region, self.state, self.primary, self.target = region, state, primary, target
        self.fetch, self.settings = fetch, settings
        self.primary_region, self.sources = primary_region, sources

    def backfill(self) -> list[str]:
        """A region that joined the stack: queue the builds the fleet runs or is moving to (each
        project's desired build and what each datacenter runs) that it lacks."""
        deployments = self.state.deployments
        wanted = {b for p in deployments.projects_with_desired_state()
                  for b in (deployments.desired(p).get("buildID"), *deployments.dc_current(p).values()) if b}
        return [b for b in sorted(wanted) if self.state.replication.backfill(b, [self.region])]

    def tick(self) -> list[tuple[str, str]]:
        """Run every due job; returns (buildID, outcome) for each."""
        return [(b, self.replicate(b)) for b in self.state.replication.due(self.region)]

    def replicate(self, build_id: str) -> str:
        started = time.monotonic()
        rec = self.state.builds.record(build_id)
        if rec is None or rec.status not in COPYABLE:
            self._finish(build_id, False, f"build is {rec.status if rec else 'missing'}", started)
            return "DROPPED"
        source = self.primary_region
        if self.sources is not None:
            source = self.state.replication.claim_source(build_id, self.region, self.primary_region,
                                                         self.settings.replication_fanout, SOURCE_LEASE_S)
            if source is None:   # every holder serves its share of copies: look again shortly
                self.state.replication.later(build_id, self.region, self.state.clock() + WAIT_FOR_SOURCE_MS)
                return "WAITING"
        fetch = self.fetch if self.sources is None or source == self.primary_region else self.sources(source)
        try:
            manifest_bytes = self.primary.get(manifest_key(rec.artifact_digest))
            manifest = Manifest.from_bytes(manifest_bytes, rec.artifact_digest)
            try:
                self._copy(build_id, manifest, fetch, source)
            except ChunkCorrupt as e:
                if source == self.primary_region:
                    raise
                # Another region's replica is trusted no more than the primary's: its bad chunk
                # was refused (digests), and the copy goes on from the primary, not failing the build.
                log.error("replication of %s to %s: %s in %s's replica; copying from %s instead",
                          build_id, self.region, e, source, self.primary_region)
                self.state.replication.update(build_id, self.region, {"source": self.primary_region})
                self._copy(build_id, manifest, self.fetch, self.primary_region)
            self.target.put(manifest_key(rec.artifact_digest), manifest_bytes)  # last
        except _Stop:
            self._finish(build_id, False, "build left DEPLOYING", started)
            return "STOPPED"
        except (ChunkCorrupt, BadManifest) as e:  # retrying cannot mend the primary's copy
            reason = f"{e} in the primary store"
            log.error("replication of %s to %s: %s", build_id, self.region, reason)
            return self._finish(build_id, False, reason, started)
        except Exception as e:  # a store unreachable, a reader lost: retry with backoff
            return self._retry(build_id, f"{type(e).__name__}: {e}", started)
        finally:
            if self.sources is not None:
                self.state.replication.release_source(build_id, self.region, source)
        return self._finish(build_id, True, "", started)

    def _finish(self, build_id: str, ok: bool, reason: str, started: float) -> str:
        """End the job (the row REPLICATED or FAILED); returns the build's status after it."""
        metrics.replication_duration().observe(time.monotonic() - started, tags={
            "region": self.region, "outcome": ReplicationStatus.REPLICATED if ok else ReplicationStatus.FAILED})
        return self.state.replication.finish(build_id, self.region, ok=ok, reason=reason)

    def _copy(self, build_id: str, manifest: Manifest, fetch: Fetch, source: str) -> None:
        chunks = manifest.unique_chunks()
        with ThreadPoolExecutor(8) as pool:  # one HEAD per chunk: 2,000 of them for 10 GB
            present_flags = list(pool.map(lambda c: self.target.has(chunk_key(c.digest)), chunks))
        missing = [c for c, present in zip(chunks, present_flags) if not present]
        row = self.state.replication.row(build_id, self.region)
        moved_chunks, moved_bytes = int(row.get("chunksTransferred", 0)), int(row.get("bytesTransferred", 0))
        missing_set = set(missing)
        present = [c for c in chunks if c not in missing_set]
        # Chunks an earlier attempt of this job moved are not "skipped": they were transferred.
        self.state.replication.update(build_id, self.region, {
            "chunksSkipped": max(0, len(present) - moved_chunks),
            "bytesSkipped": max(0, sum(c.size for c in present) - moved_bytes)})
        # Writes overlap the next fetches; at most `window` chunks wait to be written. Progress
        # goes to Redis once every 8 chunks, with the cancel check, not after every chunk.
        window = max(1, self.settings.replication_window)
        done: list[ChunkRef] = []
        writes: deque[Future] = deque()
        try:
            with ThreadPoolExecutor(window) as pool:
                for i, (ref, data) in enumerate(fetch(missing)):
                    writes.append(pool.submit(self._store_chunk, ref, data))
                    while len(writes) > window:
                        done.append(writes.popleft().result())
                    if i % 8 == 7:
                        self._progress(build_id, done)
                        if getattr(self.state.builds.record(build_id), "status", None) not in COPYABLE:
                            raise _Stop()   # cancelled (or gone) meanwhile
                        if self.sources is not None:
                            self.state.replication.extend_source(build_id, self.region, source, SOURCE_LEASE_S)
        finally:   # what was written counts, whatever stopped the copy (the pool waited for every write)
            self._progress(build_id, done + [w.result() for w in writes if not w.exception()])

    def _store_chunk(self, ref: ChunkRef, data: bytes) -> ChunkRef:
        # `replace`, not `put`: the copy already listed what the region lacks, and `put`'s own
        # HEAD before every PUT was a third of the requests (a chunk is content-addressed, so a
        # racing writer writes the same bytes)
        self.target.replace(chunk_key(ref.digest), verified(ref.digest, data))
        return ref

    def _progress(self, build_id: str, done: list[ChunkRef]) -> None:
        """Count the chunks written since the last call (and empty `done`)."""
        if not done:
            return
        size = sum(c.size for c in done)
        metrics.replication_bytes().inc(size, tags={"region": self.region})
        self.state.replication.update(build_id, self.region, {},
                                      incr={"chunksTransferred": len(done), "bytesTransferred": size})
        done.clear()

    def _retry(self, build_id: str, error: str, started: float) -> str:
        """Retry with capped exponential backoff for `replication_give_up_s` from the job's start:
        a store outage costs time; only one longer than that fails the build (and
        `op=RETRY` can still restart it)."""
        s = self.settings
        row = self.state.replication.row(build_id, self.region)
        retries = int(row.get("retries", 0))
        since_s = (self.state.clock() - int(row.get("createdAt") or self.state.clock())) / 1000
        if since_s >= s.replication_give_up_s:
            return self._finish(build_id, False, f"gave up after {retries + 1} attempts over {since_s:.0f}s: {error}",
                                started)
        delay = min(s.replication_backoff_max_s, s.replication_backoff_s * 2 ** min(retries, 30))
        log.warning("replication of %s to %s failed (%s); retry in %.1fs", build_id, self.region, error, delay)
        self.state.replication.retry(build_id, self.region, self.state.clock() + int(delay * 1000), error)
        return ReplicationStatus.RETRYING


def direct_fetch(source: BlobStore) -> Fetch:
    """Read chunks straight from a store (no Ray): for single-process use and tests."""
    def fetch(refs: Iterable[ChunkRef]):
        for ref in refs:
            yield ref, source.get(chunk_key(ref.digest))
    return fetch
