"""The deploy plane's Ray shell: one rollout coordinator per datacenter, pinned to its region."""
from __future__ import annotations

import threading

import ray

from gantry.actors.loop import start_loop, wake_on_messages
from gantry.actors.replication.repair import repair_chunk
from gantry.actors.rollout.analyst import Analyst
from gantry.actors.rollout.prometheus_api import PrometheusAPI
from gantry.actors.rollout.coordinator import Coordinator
from gantry.actors.rollout.host_gateway import HostGateway
from gantry.rollout.hostmemory import HostMemory
from gantry.state import State
from gantry.artifacts.blobstore import manifest_key, s3_for
from gantry.artifacts.manifest import Manifest
from gantry.peerauth import dc_key
from gantry.settings import Settings
from gantry.constants import HEAD
from gantry.tls import server_context
from gantry.topology import StackConfig

URL_TTL_S = 900   # a host's presigned URLs into its region's store last this long


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1, max_concurrency=32)
class RolloutCoordinatorActor:
    """One datacenter's coordinator, pinned to its region. Hosts reach it at its own endpoint on
    its node (`host_gateway.HostGateway`); it steps when a deployment changes (Redis pub/sub), when
    one of its hosts reports a change, and every `coordinator_tick_s` anyway."""

    def __init__(self, stack_file: str, dc: str, region: str):
        stack = StackConfig.load(stack_file)
        settings = Settings()
        target = next(r for r in stack.regions if r.name == region)
        state = State(stack.redis_url)
        primary = s3_for(stack.primary, stack.s3_access_key, stack.s3_secret_key)
        regional = s3_for(target, stack.s3_access_key, stack.s3_secret_key)
        self.coordinator = Coordinator(dc, region, stack.dcs_by_region(), state,
                                       lost_after_s=float(settings.host_lost_s),
                                       presign=lambda key: regional.presign(key, URL_TTL_S),
                                       manifest_chunks=lambda d: {c.digest for c in Manifest.from_bytes(
                                           regional.get(manifest_key(d)), d).chunks},
                                       peer_key=dc_key(stack.jwt_secret(), dc),
                                       repair=lambda digest: repair_chunk(region, primary, regional, digest, "host"),
                                       memory=HostMemory(idle_s=float(settings.host_idle_report_s),
                                                         busy_s=float(settings.host_busy_report_s)),
                                       stage_timeout_s=settings.stage_timeout_s,
                                       stage_min_bytes_per_s=settings.stage_min_mbps * 1e6,
                                       distrust_s=settings.peer_distrust_s)
        self.endpoint = HostGateway(self.coordinator, stack.jwt_secret(), dc, host=ray.util.get_node_ip_address(),
                                     rate=(settings.host_rate_per_s, settings.host_rate_burst),
                                     max_body=settings.max_host_report_bytes,
                                     tls=server_context(stack.tls_cert_file, stack.tls_key_file) if stack.tls_cert_file else None)
        self.wakeup = threading.Event()
        self.coordinator.on_news = self.wakeup.set
        wake_on_messages(state.deployments.subscribe, self.wakeup, "desired-state")
        start_loop(self.coordinator.tick, lambda: settings.coordinator_tick_s, self.wakeup)

    def endpoint_url(self) -> str:
        """Where this datacenter's hosts report: the endpoint on this actor's node."""
        return self.endpoint.url

    def where(self) -> dict:
        """Where hosts are served: this actor's node, its endpoint, and how many requests it answered."""
        return {"node": ray.get_runtime_context().get_node_id(), "url": self.endpoint.url,
                "served": self.endpoint.served}


@ray.remote(num_cpus=0, resources=HEAD, max_restarts=-1, max_task_retries=-1)
class AnalystActor:
    """Canary analysis of baking waves, and the apps' discovery targets (`analyst.Analyst`)."""

    def __init__(self, stack_file: str):
        stack, settings = StackConfig.load(stack_file), Settings()
        clients: dict[str, PrometheusAPI] = {}

        def client(url: str) -> PrometheusAPI:   # the stack's CA verifies the stack's own Prometheus
            if url not in clients:
                clients[url] = PrometheusAPI(url, stack.ca_file if url == stack.prometheus_url else "")
            return clients[url]
        self.analyst = Analyst(State(stack.redis_url), stack.dcs_by_region(), client, stack.prometheus_url,
                               settings.prometheus_scrape_s, stack.prometheus_targets_dir)
        start_loop(self.analyst.tick, lambda: settings.analyst_tick_s)

    def check(self, project: str, runs: int) -> dict:
        return self.analyst.check(project, runs)
