"""An artifact's manifest: its chunks in order, its size and digest. Stored content-addressed;
the manifest's own digest names the artifact (the build's `artifact.digest`)."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cached_property

from gantry.artifacts.chunking import ChunkRef, digest_of

DIGEST_RE = re.compile(r"^blake3:[0-9a-f]{64}$")
FORMAT = "gantry-manifest-v1"


class BadManifest(Exception):
    pass


@dataclass(frozen=True)
class Manifest:
    size: int
    digest: str                 # of the whole tar stream
    chunks: tuple[ChunkRef, ...]

    def to_bytes(self) -> bytes:
        doc = {"format": FORMAT, "size": self.size, "digest": self.digest,
               "chunks": [[c.digest, c.offset, c.size] for c in self.chunks]}
        return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()

    @cached_property   # a host's every report names it; the chunk list never changes
    def manifest_digest(self) -> str:
        return digest_of(self.to_bytes())

    def unique_chunks(self) -> list[ChunkRef]:
        seen, out = set(), []
        for c in self.chunks:
            if c.digest not in seen:
                seen.add(c.digest)
                out.append(c)
        return out

    @classmethod
    def from_bytes(cls, data: bytes, expect_digest: str | None = None) -> "Manifest":
        if expect_digest is not None and digest_of(data) != expect_digest:
            raise BadManifest(f"manifest does not match its digest {expect_digest}")
        try:
            doc = json.loads(data)
            if doc.get("format") != FORMAT:
                raise BadManifest(f"unknown manifest format {doc.get('format')!r}")
            chunks = tuple(ChunkRef(d, int(o), int(s)) for d, o, s in doc["chunks"])
            m = cls(size=int(doc["size"]), digest=doc["digest"], chunks=chunks)
        except (ValueError, KeyError, TypeError) as e:
            raise BadManifest(f"malformed manifest: {e}")
        offset = 0
        for c in m.chunks:
            if not DIGEST_RE.match(c.digest) or c.offset != offset or c.size <= 0:
                raise BadManifest(f"chunk list is not contiguous at offset {offset}")
            offset += c.size
        if offset != m.size or not DIGEST_RE.match(m.digest):
            raise BadManifest("chunk sizes do not add up to the artifact size")
        return m
