"""The replication plane's Ray shell: one replicator per region, pinned to that region's node."""
from __future__ import annotations

import logging
import threading

import ray

from gantry.actors.loop import start_loop, wake_on_messages
from gantry.actors.replication.repair import Scrubber
from gantry.actors.replication.replicator import Replicator
from gantry.actors.replication.transport import object_store_fetch
from gantry.state import State
from gantry.artifacts.blobstore import chunk_key, s3_for
from gantry.settings import Settings
from gantry.topology import StackConfig

log = logging.getLogger("gantry.replication")


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=3, max_concurrency=16)
class ChunkReaderActor:
    """On a region's node: reads chunks from its store into the Ray object store, from which the
    object manager carries them to the replicators of regions that copy from this one (the
    primary, or a region whose replica landed: replication is a tree). Long-lived, so no worker
    process is started per chunk."""

    def __init__(self, stack_file: str, region: str = ""):
        stack = StackConfig.load(stack_file)
        store = next((r for r in stack.regions if r.name == region), stack.primary)
        self.store = s3_for(store, stack.s3_access_key, stack.s3_secret_key)

    def read(self, digest: str) -> bytes:
        return self.store.get(chunk_key(digest))


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)
class RegionReplicatorActor:
    """Replicates artifacts into one region's store; pinned to that region's node."""

    def __init__(self, stack_file: str, region: str):
        stack = StackConfig.load(stack_file)
        self.settings = Settings()
        target = next(r for r in stack.regions if r.name == region)
        self.replicator = Replicator(
            region, State(stack.redis_url),
            s3_for(stack.primary, stack.s3_access_key, stack.s3_secret_key),
            s3_for(target, stack.s3_access_key, stack.s3_secret_key, max_attempts=3),
            object_store_fetch(stack.primary.name, self.settings.replication_window),
            self.settings, stack.primary.name,
            lambda source: object_store_fetch(source, self.settings.replication_window))
        if queued := self.replicator.backfill():
            log.info("%s joined after %d builds in use published: replicating them", region, len(queued))
        wakeup = threading.Event()   # a job queued for now wakes it; a retry's backoff is the tick's
        wake_on_messages(lambda: self.replicator.state.replication.subscribe(region), wakeup, "replication")
        start_loop(self.replicator.tick, lambda: self.settings.replicator_tick_s, wakeup)
        scrubber = Scrubber(region, self.replicator.primary, self.replicator.target, self.settings.scrub_chunks_per_s)
        start_loop(scrubber.run_once, lambda: self.settings.scrub_interval_s)

    def peak_rss_bytes(self) -> int:
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
