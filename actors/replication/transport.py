"""How chunks travel between regions: through the Ray object store.

A reader actor on the primary region's node (`actors.ChunkReaderActor`) reads chunks from its blob store into the object
store; the object manager carries them to the replicator that asked, in another region.
"""
from __future__ import annotations

import ray

from gantry.artifacts.chunking import ChunkRef
from gantry.constants import NAMESPACE, reader_name


def object_store_fetch(primary: str, window: int):
    """Chunks carried from the primary region by the Ray object manager, at most `window` in
    flight (backpressure: a 10 GB artifact never needs more than window x chunk size)."""
    def fetch(refs: list[ChunkRef]):
        reader = ray.get_actor(reader_name(primary), namespace=NAMESPACE)
        pending: list[tuple[ChunkRef, ray.ObjectRef]] = []
        for ref in refs:
            pending.append((ref, reader.read.remote(ref.digest)))
            if len(pending) >= window:
                first, obj = pending.pop(0)
                yield first, ray.get(obj)
        for first, obj in pending:
            yield first, ray.get(obj)
    return fetch
