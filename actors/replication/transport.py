"""How chunks travel between regions: through the Ray object store.

A reader actor on the primary region's node reads chunks from its blob store into the object
store; the object manager carries them to the replicator that asked, in another region.
"""
from __future__ import annotations

import ray

from gantry.artifacts.blobstore import chunk_key, s3_for
from gantry.artifacts.chunking import ChunkRef
from gantry.constants import NAMESPACE, reader_name
from gantry.topology import StackConfig


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=3, max_concurrency=16)
class ChunkReaderActor:
    """On the primary region's node: reads chunks from its store into the Ray object store, from
    which the object manager carries them to the replicators. Long-lived, so no worker process
    is started per chunk."""

    def __init__(self, stack_file: str):
        stack = StackConfig.load(stack_file)
        self.store = s3_for(stack.primary, stack.s3_access_key, stack.s3_secret_key)

    def read(self, digest: str) -> bytes:
        return self.store.get(chunk_key(digest))


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
