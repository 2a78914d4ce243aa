import io
import random

import pytest

from gantry.artifacts.chunking import cut, digest_of
from gantry.artifacts.manifest import BadManifest, Manifest

AVG = 16 << 10


def data(n, seed=1):
    return random.Random(seed).randbytes(n)


def chunks_of(buf):
    return [ref for ref, _ in cut(io.BytesIO(buf), AVG)]


def test_chunks_cover_the_stream_in_order():
    buf = data(2 << 20)
    refs = chunks_of(buf)
    assert refs[0].offset == 0 and sum(r.size for r in refs) == len(buf)
    assert all(a.offset + a.size == b.offset for a, b in zip(refs, refs[1:]))
    assert all(r.digest == digest_of(buf[r.offset:r.offset + r.size]) for r in refs)


def test_boundaries_are_stable_under_an_insertion():
    buf = data(4 << 20)
    changed = buf[: 2 << 20] + b"inserted!" * 11 + buf[2 << 20:]
    before = {r.digest for r in chunks_of(buf)}
    after = [r.digest for r in chunks_of(changed)]
    shared = sum(d in before for d in after)
    assert shared >= len(after) - 3, f"only {shared} of {len(after)} chunks shared"
    assert len(after) > 50


def test_manifest_round_trip_and_digest():
    buf = data(1 << 20)
    refs = tuple(chunks_of(buf))
    m = Manifest(size=len(buf), digest=digest_of(buf), chunks=refs)
    again = Manifest.from_bytes(m.to_bytes(), m.manifest_digest)
    assert again == m and again.manifest_digest == m.manifest_digest


def test_manifest_refuses_tampering():
    buf = data(1 << 20)
    m = Manifest(size=len(buf), digest=digest_of(buf), chunks=tuple(chunks_of(buf)))
    with pytest.raises(BadManifest, match="does not match"):
        Manifest.from_bytes(m.to_bytes().replace(b'"size":', b'"size": '), m.manifest_digest)
    gap = Manifest(size=m.size, digest=m.digest, chunks=m.chunks[1:])
    with pytest.raises(BadManifest, match="contiguous"):
        Manifest.from_bytes(gap.to_bytes())
    with pytest.raises(BadManifest):
        Manifest.from_bytes(b"not json")
