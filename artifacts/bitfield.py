"""Which of an artifact's chunks a host holds, as a bitfield over the manifest's unique-chunk
indexes (`Manifest.unique_chunks()` order): bit i set = chunk i held. In memory a Python int; on
the wire base64 of its little-endian bytes, 1 bit per chunk (a 10 GB artifact of 2 MB chunks
is 5,000 chunks: 836 characters, where a list of digests took 355 KB)."""
from __future__ import annotations

import base64

MAX_CHUNKS = 1 << 20   # an artifact of more chunks than this is refused (10 GB needs ~5,000)


class BadBitfield(ValueError):
    pass


def encode(bits: int) -> str:
    if bits < 0:
        raise BadBitfield("a bitfield is not negative")
    return base64.b64encode(bits.to_bytes((bits.bit_length() + 7) // 8, "little")).decode()


def decode(text: str, n_chunks: int | None = None) -> int:
    """The bits of `text`; with `n_chunks`, a bit at or beyond it is refused."""
    if len(text) > (MAX_CHUNKS // 8) * 4 // 3 + 4:
        raise BadBitfield("bitfield too long")
    try:
        bits = int.from_bytes(base64.b64decode(text, validate=True), "little")
    except ValueError as e:
        raise BadBitfield(f"not base64: {e}") from None
    if n_chunks is not None and bits >> n_chunks:
        raise BadBitfield(f"bitfield names a chunk beyond the artifact's {n_chunks}")
    return bits


def of(indexes) -> int:
    bits = 0
    for i in indexes:
        bits |= 1 << i
    return bits


def indexes(bits: int) -> list[int]:
    """The set bits, lowest first (one pass over the bytes)."""
    raw = bits.to_bytes((bits.bit_length() + 7) // 8, "little")
    return [8 * k + j for k, byte in enumerate(raw) if byte for j in range(8) if byte >> j & 1]


def full(n_chunks: int) -> int:
    return (1 << n_chunks) - 1
