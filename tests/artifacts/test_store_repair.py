import os

import pytest

from gantry.actors.replication.repair import Scrubber, repair_chunk
from gantry.artifacts.blobstore import FsBlobStore, chunk_key
from gantry.artifacts.chunking import digest_of
from gantry.artifacts.publish import publish
from gantry.artifacts.chunking import ChunkCorrupt


@pytest.fixture
def stores(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "blob").write_bytes(os.urandom(300_000))
    primary, region = FsBlobStore(tmp_path / "primary"), FsBlobStore(tmp_path / "region")
    manifest, _ = publish(out, primary, 16 << 10)
    for c in manifest.unique_chunks():
        region.put(chunk_key(c.digest), primary.get(chunk_key(c.digest)))
    return primary, region, manifest


def flip(store, digest):
    path = store._path(chunk_key(digest))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))


def test_a_flipped_byte_is_repaired_from_the_primary(stores):
    primary, region, manifest = stores
    bad = manifest.chunks[2].digest
    flip(region, bad)
    assert digest_of(region.get(chunk_key(bad))) != bad
    assert repair_chunk("eu", primary, region, bad, "host") is True
    assert digest_of(region.get(chunk_key(bad))) == bad
    assert repair_chunk("eu", primary, region, bad, "host") is False      # nothing left to do


def test_a_bad_primary_copy_is_never_spread(stores):
    primary, region, manifest = stores
    bad = manifest.chunks[1].digest
    flip(region, bad)
    flip(primary, bad)
    with pytest.raises(ChunkCorrupt):
        repair_chunk("eu", primary, region, bad, "host")
    with pytest.raises(ValueError):
        repair_chunk("eu", primary, region, "blake3:../../etc", "host")


def test_the_scrubber_finds_and_repairs_at_its_rate(stores):
    primary, region, manifest = stores
    for c in manifest.unique_chunks()[:3]:
        flip(region, c.digest)
    naps = []
    checked, repaired = Scrubber("eu", primary, region, chunks_per_s=50, sleep=naps.append).run_once()
    assert (checked, repaired) == (len(manifest.unique_chunks()), 3)
    assert naps == [1 / 50] * checked
    assert all(digest_of(region.get(chunk_key(c.digest))) == c.digest for c in manifest.unique_chunks())
    assert Scrubber("eu", primary, region, chunks_per_s=50, sleep=lambda s: None).run_once()[1] == 0
