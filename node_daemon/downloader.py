"""Download an artifact's missing chunks: from peers first, the regional blob store (origin) when
no peer has a chunk, every chunk verified before it is kept.

- Concurrency: `workers` chunks at once, each from a randomly chosen peer the tracker offered.
- A peer that serves bad data is blacklisted for the rest of the download; one that fails
  (refused, 404, timeout) is skipped for that chunk.
- Endgame: when nothing is left to start, idle workers re-request chunks that have been in flight
  longer than `endgame_s` from another source; the first verified copy wins.
- The download cap is a token bucket shared by all workers.
- Resumable: chunks already in the cache are never fetched again.
"""
from __future__ import annotations

import random
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Callable

from gantry.artifacts.chunking import ChunkRef
from gantry.artifacts.manifest import Manifest
from gantry.artifacts.unpack import ChunkCorrupt
from gantry.node_daemon.chunkcache import ChunkCache
from gantry.node_daemon.tokenbucket import TokenBucket

ORIGIN = "origin"


@dataclass
class DownloadStats:
    bytes_from_peers: int = 0
    bytes_from_origin: int = 0
    chunks: int = 0
    duplicates: int = 0
    blacklisted: set[str] = field(default_factory=set)


class DownloadFailed(Exception):
    pass


class Downloader:
    def __init__(self, cache: ChunkCache, origin_get: Callable[[str], bytes],
                 peers_for: Callable[[set[str]], list[str]], download: TokenBucket | None = None,
                 workers: int = 4, timeout_s: float = 30.0, endgame_s: float = 2.0, attempts: int = 5,
                 rng: random.Random | None = None):
        self.cache, self.origin_get, self.peers_for = cache, origin_get, peers_for
        self.bucket = download or TokenBucket(0)
        self.workers, self.timeout_s, self.endgame_s, self.attempts = workers, timeout_s, endgame_s, attempts
        self.rng = rng or random.Random()

    def fetch(self, manifest: Manifest, progress: Callable[[int], None] = lambda n: None) -> DownloadStats:
        stats = DownloadStats()
        todo = list(self.cache.missing(manifest))
        lock = threading.Lock()
        inflight: dict[str, tuple[ChunkRef, float, set[str]]] = {}  # digest -> (ref, started, sources)
        errors: list[str] = []

        def next_job():
            with lock:
                if todo:
                    ref = todo.pop(0)
                    inflight[ref.digest] = (ref, time.monotonic(), set())
                    return ref, False
                slow = [v for v in inflight.values() if time.monotonic() - v[1] > self.endgame_s]
                if slow:
                    ref = min(slow, key=lambda v: v[1])[0]
                    return ref, True
                return None, bool(inflight)

        def worker():
            while not errors:
                ref, endgame = next_job()
                if ref is None:
                    if not endgame:
                        return
                    time.sleep(0.05)
                    continue
                try:
                    self._fetch_one(ref, stats, lock, inflight, endgame)
                except DownloadFailed as e:
                    with lock:
                        errors.append(str(e))
                    return
                with lock:
                    if inflight.pop(ref.digest, None) is not None:
                        stats.chunks += 1
                        progress(stats.chunks)

        threads = [threading.Thread(target=worker, daemon=True) for _ in range(self.workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise DownloadFailed(errors[0])
        return stats

    def _fetch_one(self, ref: ChunkRef, stats: DownloadStats, lock: threading.Lock, inflight: dict,
                   endgame: bool) -> None:
        for _ in range(self.attempts):
            if self.cache.has(ref.digest):
                if endgame:
                    with lock:
                        stats.duplicates += 1
                return
            with lock:
                tried = inflight.get(ref.digest, (None, 0, set()))[2]
                candidates = [p for p in self.peers_for({ref.digest})
                              if p not in stats.blacklisted and p not in tried]
            source = self.rng.choice(candidates) if candidates else ORIGIN
            with lock:
                tried.add(source)
            try:
                data = self._from_origin(ref) if source == ORIGIN else self._from_peer(source, ref)
                self.cache.put(ref.digest, data)   # verifies
            except ChunkCorrupt:
                with lock:
                    stats.blacklisted.add(source)
                continue
            except Exception:                       # refused, 404, timeout, S3 error: another source
                continue
            with lock:
                if source == ORIGIN:
                    stats.bytes_from_origin += ref.size
                else:
                    stats.bytes_from_peers += ref.size
            return
        if not self.cache.has(ref.digest):
            raise DownloadFailed(f"chunk {ref.digest} could not be fetched from any source")

    def _from_origin(self, ref: ChunkRef) -> bytes:
        data = self.origin_get(ref.digest)
        self.bucket.take(len(data))
        return data

    def _from_peer(self, address: str, ref: ChunkRef) -> bytes:
        with urllib.request.urlopen(f"http://{address}/chunks/{ref.digest}", timeout=self.timeout_s) as r:
            parts = []
            while piece := r.read(64 << 10):
                self.bucket.take(len(piece))
                parts.append(piece)
            return b"".join(parts)
