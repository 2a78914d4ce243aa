import os

import pytest

from gantry.artifacts.blobstore import FsBlobStore, chunk_key
from gantry.artifacts.publish import publish
from gantry.artifacts.chunking import ChunkCorrupt
from gantry.node_daemon.chunkcache import ChunkCache
from gantry.node_daemon.installer import InstallFailed, Installer


def artifact(tmp_path, name, files):
    out = tmp_path / name
    out.mkdir()
    for f, data in files.items():
        (out / f).write_bytes(data)
    store = FsBlobStore(tmp_path / "origin")
    manifest, _ = publish(out, store, 16 << 10)
    return manifest, store


def test_cache_verifies_resumes_and_reuses(tmp_path):
    big = os.urandom(400_000)
    m1, origin = artifact(tmp_path, "v1", {"big": big, "small": b"one"})
    cache = ChunkCache(tmp_path / "cache")
    with pytest.raises(ChunkCorrupt):
        cache.put(m1.chunks[0].digest, b"not it")
    half = m1.unique_chunks()[: len(m1.unique_chunks()) // 2]
    for c in half:                              # a download interrupted halfway...
        cache.put(c.digest, origin.get(chunk_key(c.digest)))
    cache2 = ChunkCache(tmp_path / "cache")     # ...and the daemon restarted
    assert [c.digest for c in cache2.missing(m1)] == [c.digest for c in m1.unique_chunks()[len(half):]]
    for c in cache2.missing(m1):
        cache2.put(c.digest, origin.get(chunk_key(c.digest)))
    m2, origin = artifact(tmp_path, "v2", {"big": big, "small": b"two"})
    assert 0 < len(cache2.missing(m2)) <= 2      # a delta deploy fetches only new chunks
    held = len(cache2.held(m1))                 # the cache holds exactly v1's chunks
    assert held == len(m1.unique_chunks())
    assert cache2.prune([m1, m2]) == 0
    assert cache2.prune([]) == held and cache2.held(m1) == set()


def test_install_switch_hooks_and_keep_three(tmp_path):
    cache = ChunkCache(tmp_path / "cache")
    inst = Installer(tmp_path / "host", keep=3)
    for i in range(5):
        m, origin = artifact(tmp_path, f"r{i}", {"app": f"release {i}".encode()})
        for c in m.unique_chunks():
            cache.put(c.digest, origin.get(chunk_key(c.digest)))
        inst.unpack(f"b{i}", (cache.get(c.digest) for c in m.chunks))
        previous = inst.switch(f"b{i}")
        assert previous == (f"b{i - 1}" if i else None)
        inst.run_hooks(f"b{i}", start="test -f app", health="grep -q 'release' app")
        assert (tmp_path / "host/current/app").read_text() == f"release {i}"
        inst.prune()
    assert sorted(p.name for p in (tmp_path / "host/releases").iterdir()) == ["b2", "b3", "b4"]
    assert inst.active() == "b4"
    assert inst.switch("b3") == "b4" and (tmp_path / "host/current/app").read_text() == "release 3"
    with pytest.raises(InstallFailed, match="health command exited with 3"):
        inst.run_hooks("b3", start="", health="echo sick >&2; exit 3")
    with pytest.raises(InstallFailed, match="not installed"):
        inst.switch("b9")
