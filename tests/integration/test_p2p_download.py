"""The node daemon's peer server and downloader over real HTTP on loopback (no Ray, no stack)."""
import os
import time

import pytest

from gantry.artifacts.chunking import ChunkCorrupt
from gantry.artifacts.blobstore import FsBlobStore, chunk_key
from gantry.artifacts.publish import publish
from gantry.node_daemon.chunkcache import ChunkCache
from gantry.node_daemon.downloader import Downloader, DownloadFailed
from gantry.node_daemon.peer_server import PeerServer
from gantry.tokenbucket import TokenBucket
from gantry.peerauth import PeerAuth
from helpers import RoguePeer, wait_until


AUTH = PeerAuth("ab" * 32)   # the datacenter's key, as a coordinator hands it out


def downloader(cache, origin, offer, **kw) -> Downloader:
    """A downloader whose tracker offers `offer(wanted)` and says nothing about the origin."""
    return Downloader(cache, origin, lambda wanted, failed: (offer(wanted), None), credential=lambda: AUTH.credential("me"), **kw)


class Origin:
    """The regional blob store, counting what is asked of it."""

    def __init__(self, store):
        self.store, self.calls = store, 0

    def get(self, digest):
        self.calls += 1
        return self.store.get(chunk_key(digest))


@pytest.fixture
def artifact(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "blob").write_bytes(os.urandom(3 << 20))
    store = FsBlobStore(tmp_path / "origin")
    manifest, _ = publish(out, store, 64 << 10)
    return manifest, store


def seeded_peer(tmp_path, name, manifest, store, upload=None):
    cache = ChunkCache(tmp_path / name)
    for c in manifest.unique_chunks():
        cache.put(c.digest, store.get(chunk_key(c.digest)))
    return PeerServer(cache, upload=upload, auth=AUTH).start()


def test_downloads_from_peers_not_origin(tmp_path, artifact):
    manifest, store = artifact
    peers = [seeded_peer(tmp_path, f"p{i}", manifest, store) for i in range(2)]
    origin = Origin(store)
    cache = ChunkCache(tmp_path / "me")
    stats = downloader(cache, origin.get, lambda wanted: {d: [p.address for p in peers] for d in wanted}).fetch(manifest)
    assert cache.missing(manifest) == [] and origin.calls == 0
    assert stats.bytes_from_peers == sum(c.size for c in manifest.unique_chunks())
    assert sum(p.bytes_served for p in peers) == stats.bytes_from_peers
    for p in peers:
        p.stop()


def test_a_peer_serving_corrupt_chunks_is_blacklisted_and_avoided(tmp_path, artifact):
    manifest, store = artifact
    good, rogue = seeded_peer(tmp_path, "good", manifest, store), RoguePeer()
    cache = ChunkCache(tmp_path / "me")
    stats = downloader(cache, Origin(store).get, lambda wanted: {d: [rogue.address, good.address] for d in wanted},
                       workers=2).fetch(manifest)
    assert cache.missing(manifest) == [] and rogue.address in stats.blacklisted
    for c in manifest.unique_chunks():   # nothing bad was kept
        assert cache.get(c.digest) == store.get(chunk_key(c.digest))
    good.stop()
    rogue.stop()


def test_falls_back_to_origin_and_resumes_without_refetching(tmp_path, artifact):
    manifest, store = artifact
    origin = Origin(store)
    cache = ChunkCache(tmp_path / "me")
    half = manifest.unique_chunks()[: len(manifest.unique_chunks()) // 2]
    for c in half:   # what a crashed earlier run had verified
        cache.put(c.digest, store.get(chunk_key(c.digest)))
    dead_peer = "127.0.0.1:1"
    stats = downloader(cache, origin.get, lambda wanted: {d: [dead_peer] for d in wanted}, workers=3).fetch(manifest)
    assert cache.missing(manifest) == []
    assert origin.calls == len(manifest.unique_chunks()) - len(half)
    assert stats.bytes_from_origin == sum(c.size for c in manifest.unique_chunks()[len(half):])


@pytest.mark.parametrize("endgame", [True, False])
def test_endgame_rerequests_a_stalled_chunk_elsewhere(tmp_path, artifact, endgame):
    manifest, store = artifact
    good = seeded_peer(tmp_path, "good", manifest, store)
    # with endgame the slow peer all but stalls (1 KB/s): the chunk can only come from elsewhere
    slow = seeded_peer(tmp_path, "slow", manifest, store, upload=TokenBucket(1_000 if endgame else 50_000, burst=1))
    cache = ChunkCache(tmp_path / "me")
    stalled, t0 = [], time.monotonic()

    def pick(wanted):   # one chunk is offered only by the slow peer (with endgame: at first, by both later)
        stalled[:] = stalled or [sorted(wanted)[0]]
        later = [good.address] if endgame and time.monotonic() - t0 > 0.2 else []
        return {d: [slow.address, *later] if d == stalled[0] else [good.address] for d in wanted}
    origin = Origin(store)
    downloader(cache, origin.get, pick, workers=2, endgame_s=0.3 if endgame else 1e9,
               timeout_s=60, peer_refresh_s=0).fetch(manifest)
    assert cache.missing(manifest) == [] and origin.calls == 0   # an endgame copy never comes from the origin
    if endgame:   # re-requested from the other peer once it could be: the slow one did not finish it
        assert slow.bytes_served == 0
    else:         # it came only from the slow peer (which counts it once its last byte is out)
        wait_until(lambda: slow.bytes_served > 0, 10, "the slow peer to count what it sent")
    good.stop()
    slow.stop()


def test_no_source_at_all_fails_clearly(tmp_path, artifact):
    manifest, _ = artifact

    def origin_down(digest):
        raise ConnectionError("origin unreachable")
    with pytest.raises(DownloadFailed, match="could not be fetched"):
        downloader(ChunkCache(tmp_path / "me"), origin_down, lambda w: {}, attempts=2).fetch(manifest)


def test_when_every_offered_peer_fails_the_origin_is_still_tried(tmp_path, artifact):
    manifest, store = artifact
    origin = Origin(store)
    dead = [f"127.0.0.1:{port}" for port in range(1, 9)]   # more dead peers than attempts
    stats = downloader(ChunkCache(tmp_path / "me"), origin.get, lambda wanted: {d: dead for d in wanted},
                       workers=2, attempts=5).fetch(manifest)
    assert stats.bytes_from_origin == sum(c.size for c in manifest.unique_chunks())
    assert origin.calls == len(manifest.unique_chunks())


def test_the_origin_is_asked_only_for_the_chunks_the_tracker_hands_out(tmp_path, artifact):
    """The others wait for a peer to hold them (here: one that shows up half a second later)."""
    manifest, store = artifact
    chunks = manifest.unique_chunks()
    mine = {c.digest for c in chunks[::2]}
    late = seeded_peer(tmp_path, "late", manifest, store)
    t0 = time.monotonic()

    def tracker(wanted, failed):
        offered = {d: [late.address] for d in wanted if d not in mine} if time.monotonic() - t0 > 0.5 else {}
        return offered, mine & wanted
    origin = Origin(store)
    stats = Downloader(ChunkCache(tmp_path / "me"), origin.get, tracker, credential=lambda: AUTH.credential("me"),
                       peer_refresh_s=0.1).fetch(manifest)
    assert origin.calls == len(mine)
    assert stats.bytes_from_peers == sum(c.size for c in chunks if c.digest not in mine)
    late.stop()


def test_a_chunk_is_hashed_as_it_streams_and_a_bad_one_never_lands(tmp_path, artifact):
    manifest, store = artifact
    cache, c = ChunkCache(tmp_path / "me"), manifest.unique_chunks()[0]
    with pytest.raises(ChunkCorrupt):
        with cache.writer(c.digest) as write:
            write(b"not the chunk")
    assert not cache.has(c.digest) and not list((tmp_path / "me").rglob(".part-*"))
    data = store.get(chunk_key(c.digest))
    with cache.writer(c.digest) as write:
        for i in range(0, len(data), 1000):
            write(data[i:i + 1000])
    assert cache.get(c.digest) == data


def test_a_busy_peer_answers_503_and_the_downloader_goes_elsewhere_without_counting_a_failure(tmp_path, artifact):
    manifest, store = artifact
    one = seeded_peer(tmp_path, "one", manifest, store, upload=TokenBucket(2_000_000, burst=1))
    two = seeded_peer(tmp_path, "two", manifest, store, upload=TokenBucket(2_000_000, burst=1))
    origin = Origin(store)
    stats = downloader(ChunkCache(tmp_path / "me"), origin.get, lambda wanted: {d: [one.address, two.address] for d in wanted},
                       workers=8, attempts=1).fetch(manifest)   # 8 at once, 2 peers with 2 upload slots each
    assert origin.calls == 0 and stats.bytes_from_peers == sum(c.size for c in manifest.unique_chunks())
    assert one.bytes_served and two.bytes_served
    one.stop()
    two.stop()


def test_the_download_cap_charges_every_byte_from_peers_and_the_time_slept_pays_for_them(tmp_path, artifact):
    """On a clock that moves only when the downloader sleeps: every byte from peers is charged
    (an endgame copy cut short is charged for what came), and the time slept pays for all of it
    but the bucket's burst and a piece per worker."""
    manifest, store = artifact
    clock = [0.0]

    def sleep(s):
        clock[0] += s
    rate, burst, workers = 1e6, 64 << 10, 8
    cap = TokenBucket(rate, burst=burst, clock=lambda: clock[0], sleep=sleep)
    peers = [seeded_peer(tmp_path, f"p{i}", manifest, store, upload=TokenBucket(2_000_000, burst=1)) for i in range(2)]
    stats = downloader(ChunkCache(tmp_path / "me"), Origin(store).get, lambda wanted: {d: [p.address for p in peers] for d in wanted},
                       download=cap, workers=workers, attempts=1).fetch(manifest)   # busy peers: 503s
    size = sum(c.size for c in manifest.unique_chunks())
    assert stats.bytes_from_peers == size
    charged = burst + clock[0] * rate - cap.tokens   # what was taken: refills minus what is left
    assert charged >= size, (charged, size)
    assert clock[0] * rate >= charged - burst - workers * (64 << 10)
    for p in peers:
        p.stop()
