import io
import os
import tarfile

import pytest

from gantry.artifacts.blobstore import FsBlobStore, chunk_key
from gantry.artifacts.chunking import ChunkCorrupt
from gantry.artifacts.unpack import UnsafeArchive, extract, stream_chunks
from gantry.artifacts.publish import publish


def tar_of(*members) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for info, data in members:
            t.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def entry(name, type_=tarfile.REGTYPE, data=b"x", linkname=""):
    ti = tarfile.TarInfo(name)
    ti.type, ti.linkname = type_, linkname
    if type_ == tarfile.REGTYPE:
        ti.size = len(data)
        return ti, data
    return ti, None


@pytest.mark.parametrize("members,why", [
    ([entry("/etc/evil")], "unsafe path"),
    ([entry("../evil")], "unsafe path"),
    ([entry("a/../../evil")], "unsafe path"),
    ([entry("link", tarfile.SYMTYPE, linkname="/etc/passwd")], "leaves the release"),
    ([entry("link", tarfile.SYMTYPE, linkname="../../x")], "leaves the release"),
    ([entry("dir", tarfile.SYMTYPE, linkname="."), entry("hard", tarfile.LNKTYPE, linkname="dir")], "hard link"),
    ([entry("dev", tarfile.CHRTYPE)], "special file"),
    ([entry("fifo", tarfile.FIFOTYPE)], "special file"),
    ([entry("up", tarfile.SYMTYPE, linkname="sub"), entry("sub", tarfile.DIRTYPE),
      entry("up/x")], "through a symlink"),
])
def test_hostile_tars_are_refused(tmp_path, members, why):
    with pytest.raises(UnsafeArchive, match=why):
        extract(iter([tar_of(*members)]), tmp_path / "release")
    assert not (tmp_path / "evil").exists()


def test_round_trip_through_chunks(tmp_path):
    out = tmp_path / "out"
    (out / "bin").mkdir(parents=True)
    (out / "bin" / "app").write_bytes(os.urandom(300_000))
    os.chmod(out / "bin" / "app", 0o755)
    os.symlink("bin/app", out / "run")
    store = FsBlobStore(tmp_path / "store")
    manifest, _ = publish(out, store, 16 << 10)
    extract(stream_chunks(manifest, lambda d: store.get(chunk_key(d))), tmp_path / "rel")
    assert (tmp_path / "rel/bin/app").read_bytes() == (out / "bin/app").read_bytes()
    assert os.access(tmp_path / "rel/bin/app", os.X_OK) and os.readlink(tmp_path / "rel/run") == "bin/app"


def test_a_chunk_that_does_not_match_its_digest_is_refused(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "f").write_bytes(os.urandom(100_000))
    store = FsBlobStore(tmp_path / "store")
    manifest, _ = publish(out, store, 16 << 10)
    victim = manifest.chunks[1].digest
    path = store._path(chunk_key(victim))
    data = path.read_bytes()
    path.write_bytes(bytes([data[0] ^ 0xFF]) + data[1:])   # always a different byte
    with pytest.raises(ChunkCorrupt) as e:
        extract(stream_chunks(manifest, lambda d: store.get(chunk_key(d))), tmp_path / "rel")
    assert e.value.digest == victim


def test_republishing_uploads_nothing_new(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "f").write_bytes(os.urandom(200_000))
    store = FsBlobStore(tmp_path / "store")
    m1, s1 = publish(out, store, 16 << 10)
    m2, s2 = publish(out, store, 16 << 10)
    assert m1 == m2 and s1.chunks_uploaded == len(m1.unique_chunks()) and s2.chunks_uploaded == 0


def test_reading_the_stream_in_small_pieces_moves_each_byte_a_bounded_number_of_times():
    from gantry.artifacts.unpack import _ChunkReader
    chunks = [bytes([i]) * (256 << 10) for i in range(32)]   # 8 MiB in 256 KiB chunks
    reader = _ChunkReader(iter(chunks))
    out = bytearray()
    while piece := reader.read(512):   # tarfile reads a stream in small records
        out += piece
    assert out == b"".join(chunks)
    assert reader.copied <= 3 * len(out)   # the old reader moved about 257x the artifact here
