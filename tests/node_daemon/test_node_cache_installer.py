import os
import signal

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


def test_a_start_command_that_keeps_running_does_not_hold_up_the_install(tmp_path):
    inst = Installer(tmp_path / "host", command_timeout_s=1.5, start_grace_s=0.3)
    m, origin = artifact(tmp_path, "r", {"app": b"release"})
    inst.unpack("b1", (origin.get(chunk_key(c.digest)) for c in m.chunks))
    inst.switch("b1")
    inst.run_hooks("b1", start="echo $$ > ../../started.pid; exec sleep 300", health="grep -q release app")
    pid = int((tmp_path / "host" / "started.pid").read_text())
    try:
        os.kill(pid, 0)   # the service is still running, detached
        assert "--- start:" in (tmp_path / "host" / "releases" / "b1" / ".gantry-hooks.log").read_text()
    finally:
        os.kill(pid, signal.SIGKILL)
    with pytest.raises(InstallFailed, match="start command exited with 4"):
        inst.run_hooks("b1", start="exit 4", health="")


def test_pruning_a_host_keeps_only_the_chunks_of_the_releases_it_keeps(tmp_path):
    from gantry.node_daemon.daemon import prune_host
    cache, inst = ChunkCache(tmp_path / "cache"), Installer(tmp_path / "host", keep=2)
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    made = []
    for i in range(4):
        m, origin = artifact(tmp_path, f"r{i}", {"app": os.urandom(50_000)})
        (manifests / f"b{i}.build").write_text(m.manifest_digest)
        (manifests / f"{m.manifest_digest.split(':', 1)[1]}.json").write_bytes(m.to_bytes())
        for c in m.unique_chunks():
            cache.put(c.digest, origin.get(chunk_key(c.digest)))
        inst.unpack(f"b{i}", (cache.get(c.digest) for c in m.chunks))
        inst.switch(f"b{i}")
        made.append(m)
        os.utime(tmp_path / "host" / "releases" / f"b{i}", (i + 1, i + 1))
        prune_host([inst], cache, manifests)
    assert inst.release_ids() == ["b3", "b2"]
    assert [len(cache.held(m)) for m in made] == [0, 0, len(made[2].unique_chunks()), len(made[3].unique_chunks())]
    assert sorted(f.name for f in manifests.glob("*.build")) == ["b2.build", "b3.build"]
    prune_host([inst], cache, manifests, max_bytes=60_000)   # room for the active release alone
    assert len(cache.held(made[2])) == 0 and cache.missing(made[3]) == []


def test_a_capped_host_fetches_as_many_chunks_at_once_as_a_peer_has_upload_slots():
    from gantry.node_daemon.daemon import download_workers
    from gantry.node_daemon.peer_server import UPLOAD_SLOTS
    assert download_workers(1e6) == UPLOAD_SLOTS == 2   # capped: two of a peer's half-cap streams fill the cap
    assert download_workers(0) == 4              # uncapped: more at once overlap the agent's CPU
