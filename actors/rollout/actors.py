"""The deploy plane's Ray shell: one rollout coordinator per datacenter, pinned to its region."""
from __future__ import annotations

import logging
import threading

import ray

from gantry.actors.loop import start_loop
from gantry.actors.replication.repair import repair_chunk
from gantry.actors.rollout.coordinator import Coordinator
from gantry.state import State
from gantry.artifacts.blobstore import manifest_key, s3_for
from gantry.artifacts.manifest import Manifest
from gantry.peerauth import dc_key
from gantry.settings import Settings
from gantry.topology import StackConfig

log = logging.getLogger("gantry.actors.rollout")
URL_TTL_S = 900   # a host's presigned URLs into its region's store last this long


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1, max_concurrency=32)
class RolloutCoordinatorActor:
    """One datacenter's coordinator, pinned to its region. Hosts reach it through the API
    gateway; it wakes on desired-state changes (Redis pub/sub) and re-reads every 0.5 s anyway."""

    def __init__(self, stack_file: str, dc: str, region: str):
        stack = StackConfig.load(stack_file)
        target = next(r for r in stack.regions if r.name == region)
        state = State(stack.redis_url)
        primary = s3_for(stack.primary, stack.s3_access_key, stack.s3_secret_key)
        regional = s3_for(target, stack.s3_access_key, stack.s3_secret_key)
        self.coordinator = Coordinator(dc, region, stack.dcs_by_region(), state,
                                       lost_after_s=float(Settings().host_lost_s),
                                       presign=lambda key: regional.presign(key, URL_TTL_S),
                                       manifest_chunks=lambda d: {c.digest for c in Manifest.from_bytes(
                                           regional.get(manifest_key(d)), d).chunks},
                                       peer_key=dc_key(stack.jwt_secret(), dc),
                                       repair=lambda digest: repair_chunk(region, primary, regional, digest, "host"))
        self.wakeup = threading.Event()

        def listen():
            while True:
                try:
                    pubsub = state.deployments.subscribe()
                    for _ in pubsub.listen():
                        self.wakeup.set()
                except Exception:
                    log.exception("desired-state subscription lost; re-subscribing")
                    threading.Event().wait(1)
        threading.Thread(target=listen, daemon=True).start()
        start_loop(self.coordinator.tick, lambda: 0.5, self.wakeup)

    def heartbeat(self, report: dict) -> dict:
        return self.coordinator.heartbeat(report["hostID"], report["address"], report.get("projects") or {},
                                          report.get("artifacts") or [], report.get("serves"), report.get("download"))

    def peers(self, host_id: str, artifact: str, wanted: list[str]) -> dict[str, list[str]]:
        return self.coordinator.peers(host_id, artifact, wanted)

    def origin_urls(self, host_id: str, artifact: str, digests: list[str]) -> dict[str, str] | None:
        return self.coordinator.origin_urls(host_id, artifact, digests)

    def repair(self, host_id: str, digest: str) -> bool:
        return self.coordinator.repair(host_id, digest)
