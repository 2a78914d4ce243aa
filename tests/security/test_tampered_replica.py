"""Replication is a tree: a region whose replica landed serves the next. That replica is no
more trusted than the primary's: a chunk tampered with in it (bit rot, or someone with write
access to that region's bucket) must never land in the region copying from it, and must not fail
the build while the primary holds a good copy. Real Redis and real stores, no Ray."""
import os

import redis

from gantry.actors.replication.replicator import Replicator, direct_fetch
from gantry.artifacts.blobstore import FsBlobStore, chunk_key
from gantry.artifacts.publish import publish
from gantry.settings import Settings
from gantry.state import State
from gantry.statuses import BuildStatus, ReplicationStatus


def test_a_tampered_replica_serves_nothing_and_the_copy_comes_from_the_primary(redis_url, tmp_path):
    redis.Redis.from_url(redis_url).flushdb()
    state = State(redis_url)
    primary, eu, ap = (FsBlobStore(tmp_path / n) for n in ("us", "eu", "ap"))
    out = tmp_path / "out"
    out.mkdir()
    (out / "blob").write_bytes(os.urandom(1 << 20))
    b = state.builds.create("p", "a" * 40)["buildID"]
    assert state.builds.claim_next("o") == b
    manifest, stats = publish(out, primary, 16 << 10)
    state.replication.publish(b, "o", {"artifactDigest": manifest.manifest_digest, "artifactSize": manifest.size,
                                       "artifactChunks": len(manifest.chunks)}, "us", ["eu", "ap"],
                              {"bytesTransferred": stats.bytes_uploaded, "chunksTransferred": stats.chunks_uploaded,
                               "bytesSkipped": 0, "chunksSkipped": 0})
    settings = Settings(replication_give_up_s=3600, replication_backoff_s=0, replication_fanout=1)
    stores, read_from = {"eu": eu, "ap": ap}, []

    def source(region):
        read_from.append(region)
        return direct_fetch(stores[region])

    def replicator(name):
        return Replicator(name, state, primary, stores[name], direct_fetch(primary), settings, "us", source)

    assert replicator("eu").tick() == [(b, BuildStatus.DEPLOYING)]   # eu's replica, from the primary
    victim = manifest.unique_chunks()[3]
    path = eu._path(chunk_key(victim.digest))
    good = path.read_bytes()
    path.write_bytes(bytes([good[0] ^ 0xFF]) + good[1:])   # eu's copy of one chunk goes bad

    assert replicator("ap").tick() == [(b, BuildStatus.SUCCEEDED)] and read_from == ["eu"]   # tried eu's first
    rows = {r["region"]: r for r in state.replication.rows(b)}
    assert rows["ap"]["replicationStatus"] == ReplicationStatus.REPLICATED and rows["ap"]["source"] == "us", rows["ap"]
    assert ap.get(chunk_key(victim.digest)) == good          # the primary's bytes, not eu's
    assert all(ap.has(chunk_key(c.digest)) for c in manifest.unique_chunks())
    assert state.builds.record(b).status == BuildStatus.SUCCEEDED
