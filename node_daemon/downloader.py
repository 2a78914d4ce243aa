"""Download an artifact's missing chunks: from peers first, the regional blob store (origin) when
no peer has a chunk, every chunk verified before it is kept.

- Order (`chunkplan.ChunkPlan`, which the fleet simulator runs too): each host takes the chunks
  in its own random order. A chunk no peer holds yet comes
  from the origin only if the tracker handed it to this host (Owl's central choice of sources:
  the origin sends each chunk about once); otherwise it waits for a peer to get it, and goes to
  the origin anyway after `origin_after_s`. When the tracker says nothing about the origin
  (unreachable), such a chunk is put back once, then fetched from the origin.
- Concurrency: `workers` chunks at once, each from a randomly chosen peer the tracker offered. A
  peer uploads a few chunks at once and answers 503 beyond that; the downloader then tries
  another holder, or the chunk a little later (a busy peer is no failure). Each chunk thus moves
  at a good share of its uploader's bandwidth and is whole, and shareable, sooner.
- A peer that serves bad data is blacklisted for the rest of the download; one that fails
  (refused, 404, timeout) is skipped for that chunk. Claims are not trusted. With its next
  query the downloader tells the tracker which peers served it verified chunks (`served`),
  which answered 404 for a chunk they claim or sent bad bytes (`missing`: they lose their
  claims), and which never served it and answered nothing but 503 for `busy_budget_s` (`busy`:
  unless others vouch for them, their bits stop holding chunks back from the origin). A chunk
  whose only offered peers never served this host and stayed busy for `origin_after_s` comes
  from the origin; a peer that has served it is honest and busy, and is waited for. A bad copy from the origin is reported
  (`origin_corrupt`: the coordinator re-copies it from the primary) and fetched again.
- Endgame: when nothing is left to start, idle workers re-request chunks that have been in flight
  longer than `endgame_s` from another peer (never the origin); the first verified copy wins.
- The download cap is a token bucket shared by all workers.
- Resumable: chunks already in the cache are never fetched again.
"""
from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import httpx

from gantry.artifacts.chunking import ChunkRef
from gantry.artifacts.manifest import Manifest
from gantry.artifacts.chunking import ChunkCorrupt
from gantry.node_daemon.chunkcache import ChunkCache
from gantry.node_daemon.chunkplan import ChunkPlan
from gantry.peerauth import HEADER
from gantry.tokenbucket import TokenBucket

ORIGIN = "origin"
ORIGIN_TRIES = 2   # after the peers fail: the regional store, then once more after a repair
BUSY_RETRY_S = 0.05   # a chunk whose holders are all busy is tried again this much later


@dataclass
class DownloadStats:
    bytes_from_peers: int = 0
    bytes_from_origin: int = 0
    chunks: int = 0
    duplicates: int = 0
    blacklisted: set[str] = field(default_factory=set)


class DownloadFailed(Exception):
    pass


class PeerBusy(Exception):
    """The peer serves as many chunks as its upload slots allow; another one, or later."""


class Downloader:
    def __init__(self, cache: ChunkCache, origin_get: Callable[[str], bytes],
                 peers_for: Callable[[set[str], dict[str, str]], tuple[dict[str, list[str]], set[str] | None]],
                 download: TokenBucket | None = None,
                 workers: int = 4, timeout_s: float = 30.0, endgame_s: float = 2.0, attempts: int = 5,
                 rng: random.Random | None = None, peer_refresh_s: float = 0.25,
                 credential: Callable[[], str] = lambda: "",
                 origin_corrupt: Callable[[str], None] = lambda digest: None, http: httpx.Client | None = None,
                 origin_after_s: float = 60.0, busy_budget_s: float = 10.0, scheme: str = "http"):
        """`peers_for(wanted digests, reported peers: address -> "missing" | "busy")` answers (digest -> addresses of peers holding it, the
        digests this host should fetch from the origin or None if the tracker did not say); it
        is asked for everything still wanted at most every `peer_refresh_s`. `credential()` is
        this host's peer credential, sent with every chunk request. `http` keeps connections to
        peers open between chunks (the daemon shares one across downloads)."""
        self.http = http or httpx.Client(timeout=timeout_s)
        self.scheme = scheme   # https: `http` checks each peer's certificate against the stack's CA
        self.credential = credential
        self.origin_corrupt = origin_corrupt   # reports a bad regional copy, which is then healed
        self.cache, self.origin_get, self.peers_for = cache, origin_get, peers_for
        self.peer_refresh_s = peer_refresh_s
        self._peer_map: dict[str, list[str]] = {}
        self._origin: set[str] | None = None   # chunks the tracker handed this host to fetch from the origin
        self._peer_map_at = -1e9
        self.origin_after_s, self.busy_budget_s = origin_after_s, busy_budget_s
        self._peer_lock = threading.Lock()
        self._chunk_busy: dict[str, float] = {}   # chunk -> since when peers that never served us answered only 503
        self._peer_busy: dict[str, float] = {}    # peer -> since when it answered us only 503
        self._served: set[str] = set()            # peers that gave us a verified chunk
        self._verdicts: dict[str, str] = {}       # peer -> "served" | "missing" | "busy", told with the next query
        self._reported: set[str] = set()
        self.bucket = download or TokenBucket(0)
        self.workers, self.timeout_s, self.endgame_s, self.attempts = workers, timeout_s, endgame_s, attempts
        self.rng = rng or random.Random()

    def fetch(self, manifest: Manifest, progress: Callable[[int], None] = lambda n: None) -> DownloadStats:
        stats = DownloadStats()
        refs = {c.digest: c for c in self.cache.missing(manifest)}
        plan = ChunkPlan(refs, self.rng, self.endgame_s, self.origin_after_s)
        self._wanted = set(refs)
        lock = threading.Lock()
        errors: list[str] = []

        def worker():
            while not errors:
                with lock:
                    digest, endgame = plan.next(time.monotonic())
                if digest is None:
                    if not endgame:
                        return
                    time.sleep(0.05)
                    continue
                ref = refs[digest]
                if not endgame and not self._peers(ref, stats, lock, plan):
                    with lock:
                        now = time.monotonic()
                        if not plan.origin_now(digest, now, self._origin):   # look again once the tracker may know more
                            plan.park(digest, now + max(self.peer_refresh_s, 0.05))
                            continue
                try:
                    done = self._fetch_one(ref, stats, lock, plan, endgame)
                except DownloadFailed as e:
                    with lock:
                        errors.append(str(e))
                    return
                if not done:   # its holders are all busy uploading: come back to it shortly
                    with lock:
                        plan.park(digest, time.monotonic() + BUSY_RETRY_S)
                    continue
                with lock:
                    if self.cache.has(digest) and plan.land(digest):
                        stats.chunks += 1
                        progress(stats.chunks)
                if endgame and not self.cache.has(digest):
                    time.sleep(0.05)   # no other peer for a slow chunk: let its first request finish

        threads = [threading.Thread(target=worker, daemon=True) for _ in range(self.workers)]
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads) and not errors:
            with lock:
                if plan.done:   # every chunk is in; a superseded endgame request may still run
                    break
            threads[0].join(0.05) if threads[0].is_alive() else time.sleep(0.05)
        self._tell_tracker()
        if errors:
            raise DownloadFailed(errors[0])
        return stats

    def _tell_tracker(self) -> None:
        """Peers found out at the end are reported all the same: the next host to ask gains."""
        with self._peer_lock:
            failed = self._to_report()
        if failed:
            try:
                self.peers_for(set(), failed)
            except Exception:
                pass

    def _fetch_one(self, ref: ChunkRef, stats: DownloadStats, lock: threading.Lock, plan: ChunkPlan,
                   endgame: bool) -> bool:
        """Fetch one chunk; False if every peer that holds it is busy (try again a little later).
        A busy peer is no failure; an endgame copy never goes to the origin."""
        failures, busy = 0, set()
        while failures < self.attempts + ORIGIN_TRIES:
            if self.cache.has(ref.digest):
                if endgame:
                    with lock:
                        stats.duplicates += 1
                return True
            # peers for the first `attempts` failures, and while they have not been busy too long;
            # the origin always gets the last ones
            peers_now = failures < self.attempts and not self._starved(ref.digest)
            candidates = [p for p in self._peers(ref, stats, lock, plan) if p not in busy] if peers_now else []
            if not candidates and peers_now and (busy or endgame):
                return not busy
            source = self.rng.choice(candidates) if candidates else ORIGIN
            with lock:
                tried = plan.tried(ref.digest)
                tried.add(source)   # an endgame copy goes elsewhere
            try:
                if source == ORIGIN:
                    self.cache.put(ref.digest, self._from_origin(ref))   # verifies
                else:
                    self._from_peer(source, ref)
            except PeerBusy:
                with lock:
                    tried.discard(source)
                busy.add(source)
                self._busy(ref.digest, source)
                continue
            except ChunkCorrupt:
                failures += 1
                if source == ORIGIN:   # the store's copy is bad: have it healed, then try again
                    try:
                        self.origin_corrupt(ref.digest)
                    except Exception:
                        pass
                    continue
                with lock:
                    stats.blacklisted.add(source)
                self._report(source, "missing")   # it does not hold what it claims: bad bytes are no chunk
                continue
            except httpx.HTTPStatusError as e:
                failures += 1
                if e.response.status_code == 404:   # it does not hold what it claims
                    self._report(source, "missing")
                continue
            except Exception:                       # refused, timeout, S3 error: another source
                failures += 1
                continue
            with self._peer_lock:
                self._chunk_busy.pop(ref.digest, None)
                self._peer_busy.pop(source, None)
                if source != ORIGIN and source not in self._served:
                    self._served.add(source)
                    self._verdicts.setdefault(source, "served")
            with lock:
                if source == ORIGIN:
                    stats.bytes_from_origin += ref.size
                else:
                    stats.bytes_from_peers += ref.size
            return True
        if not self.cache.has(ref.digest):
            raise DownloadFailed(f"chunk {ref.digest} could not be fetched from any source")
        return True

    def _busy(self, digest: str, peer: str) -> None:
        now = time.monotonic()
        with self._peer_lock:
            if peer in self._served:   # it served us before: busy, honestly
                return
            self._chunk_busy.setdefault(digest, now)
            if now - self._peer_busy.setdefault(peer, now) > self.busy_budget_s:
                self._verdicts.setdefault(peer, "busy")

    def _starved(self, digest: str) -> bool:
        """Its peers, none of which ever served us, have been busy for `origin_after_s`: as long as
        a chunk no peer holds waits for one (an honest swarm under load is busy for seconds)."""
        with self._peer_lock:
            now = time.monotonic()
            return now - self._chunk_busy.get(digest, now) > self.origin_after_s

    def _to_report(self) -> dict[str, str]:
        """Peers found serving or wanting since the last query, each reported once per reason (under _peer_lock)."""
        failed = {p: why for p, why in self._verdicts.items() if (p, why) not in self._reported}
        self._verdicts = {}
        self._reported |= set(failed.items())
        return failed

    def _report(self, peer: str, why: str) -> None:
        with self._peer_lock:
            self._verdicts[peer] = why

    def _peers(self, ref: ChunkRef, stats: DownloadStats, lock: threading.Lock, plan: ChunkPlan) -> list[str]:
        """Peers holding this chunk, less blacklisted ones and those already tried for it."""
        handed = None
        with self._peer_lock:
            if time.monotonic() - self._peer_map_at > self.peer_refresh_s:
                self._wanted = {d for d in self._wanted if not self.cache.has(d)}
                failed = self._to_report()
                self._peer_map, self._origin = self.peers_for(self._wanted, failed) if self._wanted else ({}, None)
                self._peer_map_at = time.monotonic()
                handed = self._origin
            offered = self._peer_map.get(ref.digest, [])
        with lock:
            if handed:
                plan.first(handed - {ref.digest})
            tried = plan.tried(ref.digest)
            return [p for p in offered if p not in stats.blacklisted and p not in tried]

    def _from_origin(self, ref: ChunkRef) -> bytes:
        data = self.origin_get(ref.digest)
        self.bucket.take(len(data))
        return data

    def _from_peer(self, address: str, ref: ChunkRef) -> None:
        """The chunk from a peer into the cache, hashed as it streams to disk, reading no more
        than its size: a longer body is a bad peer."""
        host, _, port = address.rpartition(":")   # a checked host:port (the coordinator's PeerAddress)
        url = httpx.URL(scheme=self.scheme, host=host.strip("[]"), port=int(port), path=f"/chunks/{ref.digest}")
        with self.http.stream("GET", url,
                              headers={HEADER: self.credential()}, timeout=self.timeout_s) as r:
            if r.status_code == 503:
                raise PeerBusy(address)
            r.raise_for_status()
            length = r.headers.get("Content-Length")
            if length is not None and length.strip() != str(ref.size):
                raise ChunkCorrupt(ref.digest)
            got = 0
            with self.cache.writer(ref.digest) as write:
                for piece in r.iter_raw(64 << 10):
                    self.bucket.take(len(piece))
                    got += len(piece)
                    if got > ref.size:
                        raise ChunkCorrupt(ref.digest)
                    write(piece)
