"""The Ray shells: build attempts and the detached scheduler and monitor actors.

Each only wires a plain class (`BuildRunner`, `Scheduler`, `HeartbeatMonitor`) to Ray and runs
its loop. All live in namespace `gantry`; the actors pin to the head node (`gantry-head`).
"""
from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from typing import Callable

import ray
import redis
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from gantry.actors import audit, metrics
from gantry.actors.archive import Archiver
from gantry.actors.builder import BuildRunner
from gantry.actors.deploy_store import CHANNEL, DeployStore
from gantry.actors.monitor import HeartbeatMonitor
from gantry.actors.replicator import Replicator
from gantry.actors.scheduler import Scheduler
from gantry.actors.store import BuildStore
from gantry.actors.store_repair import Scrubber, repair_chunk
from gantry.artifacts.blobstore import chunk_key, s3_for
from gantry.artifacts.chunking import ChunkRef
from gantry.config import Settings
from gantry.peerauth import dc_key
from gantry.topology import BUILDER_RESOURCE, HEAD_RESOURCE, StackConfig, region_resource

log = logging.getLogger("gantry.actors")

NAMESPACE = "gantry"
SCHEDULER = "build-scheduler"
MONITOR = "build-monitor"
_PINNED = 0.001  # a sliver of a region's resource: pins to its node without limiting concurrency


def replicator_name(region: str) -> str:
    return f"replicator-{region}"
HEAD = {HEAD_RESOURCE: 0.001}


@ray.remote(num_cpus=0, resources={BUILDER_RESOURCE: 1}, max_restarts=0, max_concurrency=2)
class BuildWorker:
    """One build attempt on a builder node, started on creation.

    A detached actor rather than a plain task: a task dies with its owner, and a running build
    must outlive a scheduler restart. Named after its lease so a restarted scheduler finds it.
    """

    def __init__(self, build_id: str, owner: str, stack_file: str):
        self.done = threading.Event()
        self.outcome: str | BaseException = ""
        node = ray.get_runtime_context().get_node_id()
        runner = BuildRunner(StackConfig.load(stack_file), Settings.from_env())

        def run():
            try:
                self.outcome = runner.run(build_id, owner, node)
            except BaseException as e:  # a bug, not a build failure: the scheduler retries
                log.exception("build %s attempt %s crashed", build_id, owner)
                self.outcome = e
            self.done.set()
        threading.Thread(target=run, daemon=True).start()

    def result(self) -> str:
        self.done.wait()
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return self.outcome


WORKER_PREFIX = "build-attempt-"


def worker_name(owner: str) -> str:
    return WORKER_PREFIX + owner


def _loop(step: Callable[[], None], period: Callable[[], float], wakeup: threading.Event) -> None:
    """Call `step` forever; a failing step (Redis restarting) is logged and retried."""
    while True:
        try:
            step()
        except Exception:
            log.exception("step failed; retrying")
        wakeup.wait(period())
        wakeup.clear()


@ray.remote(num_cpus=0, resources=HEAD, max_restarts=-1, max_task_retries=-1, max_concurrency=4)
class BuildSchedulerActor:
    def __init__(self, stack_file: str):
        self.stack_file = stack_file
        self.settings = Settings.from_env()
        self.store = BuildStore(StackConfig.load(stack_file).redis_url)
        self.inflight: dict[ray.ObjectRef, tuple] = {}  # result ref -> (buildID, owner, worker)
        self._doomed: set = set()      # attempt actors to kill that could not be killed yet
        self._suspect: dict[str, float] = {}   # node ID -> until when no attempt goes there
        self._next_reconcile = 0.0     # at start-up, then every `reconcile_s`
        self.lock = threading.Lock()
        self.scheduler = Scheduler(self.store, self.settings, self._capacity, self._dispatch)
        try:
            self._reattach()
        except Exception:
            log.exception("could not re-attach to running builds; the monitor will recover them")
        self.wakeup = threading.Event()
        threading.Thread(target=_loop, args=(self._step, lambda: self.settings.scheduler_poll_s,
                                             self.wakeup), daemon=True).start()

    def _builder_nodes(self) -> dict[str, int]:
        """Builder nodes to place attempts on (node ID -> slots): alive in Ray's view, and not
        one an attempt just died on. Ray lists a dead node's capacity for some seconds; an
        attempt placed there would be lost too, and charged to its build a second time."""
        now = time.monotonic()
        self._suspect = {n: until for n, until in self._suspect.items() if until > now}
        return {n["NodeID"]: int(n["Resources"].get(BUILDER_RESOURCE, 0)) for n in ray.nodes()
                if n["Alive"] and n["Resources"].get(BUILDER_RESOURCE) and n["NodeID"] not in self._suspect}

    def _capacity(self) -> int:
        return sum(self._builder_nodes().values())

    def _dispatch(self, build_id: str, owner: str) -> None:
        nodes = self._builder_nodes()
        with self.lock:
            busy = Counter(node for (_, _, _, node) in self.inflight.values())
        node = min(nodes, key=lambda n: busy[n] / nodes[n]) if nodes else None
        options = {"name": worker_name(owner), "namespace": NAMESPACE, "lifetime": "detached"}
        if node:   # pinned: Ray alone might still pick a node that is already gone
            options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node, soft=False)
        worker = BuildWorker.options(**options).remote(build_id, owner, self.stack_file)
        self._track(build_id, owner, worker, node)

    def _track(self, build_id: str, owner: str, worker, node: str | None) -> None:
        with self.lock:
            self.inflight[worker.result.remote()] = (build_id, owner, worker, node)

    def _reattach(self) -> None:
        """After a restart: follow attempts started by the previous incarnation."""
        for rec in self.store.building():
            owner = rec.get("leaseOwner")
            try:
                worker = ray.get_actor(worker_name(owner), namespace=NAMESPACE)
            except ValueError:
                continue  # never started or already gone: the heartbeat monitor handles it
            self._track(rec["buildID"], owner, worker, rec.get("workerNode") or None)

    def _step(self) -> None:
        with self.lock:
            refs = list(self.inflight)
        done, _ = ray.wait(refs, num_returns=len(refs), timeout=0) if refs else ([], [])
        for ref in done:
            with self.lock:
                build_id, owner, worker, node = self.inflight[ref]
            try:
                ray.get(ref)
            except Exception as e:  # the attempt died: its worker or node was lost
                if node:   # place nothing there until Ray has made up its mind about the node
                    self._suspect[node] = time.monotonic() + self.settings.node_suspect_s
                try:
                    self.scheduler.attempt_crashed(build_id, owner, f"build worker lost ({type(e).__name__})")
                except redis.RedisError:
                    log.warning("could not record the crash of %s yet (Redis); retrying", build_id)
                    continue   # stays in flight until its outcome is recorded
            self._kill(worker)
            with self.lock:
                self.inflight.pop(ref, None)
        if time.monotonic() >= self._next_reconcile:
            self._reconcile()
        self.scheduler.tick()

    def _kill(self, worker) -> None:
        """Kill an attempt's actor; one that cannot be killed now is tried again every step."""
        try:
            ray.kill(worker, no_restart=True)
            self._doomed.discard(worker)
        except Exception:
            log.exception("could not kill a build attempt actor; will retry")
            self._doomed.add(worker)

    def _reconcile(self) -> None:
        """Kill every build-attempt actor that holds no lease in Redis: the orphan of a crash the
        scheduler never heard of (Redis down at the time, a scheduler restart) would otherwise
        hold a builder slot for good."""
        self._next_reconcile = time.monotonic() + self.settings.reconcile_s
        for worker in list(self._doomed):
            self._kill(worker)
        leases = {rec.get("leaseOwner") for rec in self.store.building()}
        for name in ray.util.list_named_actors():
            if not name.startswith(WORKER_PREFIX) or name[len(WORKER_PREFIX):] in leases:
                continue
            try:
                worker = ray.get_actor(name, namespace=NAMESPACE)
            except ValueError:
                continue
            log.warning("killing %s: it holds no lease", name)
            self._kill(worker)

    def wake(self) -> None:
        self.wakeup.set()

    def stats(self) -> dict:
        with self.lock:
            inflight = len(self.inflight)
        return {"inflight": inflight, "capacity": self._capacity(), "queueDepth": self.store.queue_depth()}


@ray.remote(num_cpus=0, resources=HEAD, max_restarts=-1, max_task_retries=-1, max_concurrency=4)
class BuildMonitorActor:
    """Heartbeat sweeps, the build gauges, and the periodic move of old builds to the archive."""

    def __init__(self, stack_file: str):
        self.settings = s = Settings.from_env()
        stack = StackConfig.load(stack_file)
        self.store = BuildStore(stack.redis_url)
        self.monitor = HeartbeatMonitor(self.store, s)
        self.archiver = Archiver(self.store, DeployStore(stack.redis_url),
                                 s3_for(stack.primary, stack.s3_access_key, stack.s3_secret_key))
        self._archive_lock = threading.Lock()
        for step, period in ((self.monitor.sweep, max(0.5, s.heartbeat_s / 2)),
                             (self._gauges, s.metrics_interval_s),
                             (self._scheduled_archive, s.archive_interval_s)):
            threading.Thread(target=_loop, args=(step, lambda p=period: p, threading.Event()), daemon=True).start()

    def _gauges(self) -> None:
        metrics.queue_depth().set(self.store.queue_depth())
        gauge = metrics.builds_by_status()
        for status, n in self.store.status_counts().items():
            gauge.set(n, tags={"status": status})

    def _scheduled_archive(self) -> None:
        moved = self.archive(self.settings.archive_after_s)
        if moved:
            self.store.audit_log.record(audit.prepare(
                "gantry-archiver", "archive", None, None, {"olderThanS": self.settings.archive_after_s, "moved": moved}))

    def archive(self, older_than_s: float) -> dict[str, int]:
        """Move finished builds older than `older_than_s` to the archive; returns counts per project."""
        with self._archive_lock:
            return self.archiver.run(self.store.clock() - int(older_than_s * 1000))

    def ping(self) -> bool:
        return True


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


def reader_name(region: str) -> str:
    return f"chunk-reader-{region}"


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


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)
class RegionReplicatorActor:
    """Replicates artifacts into one region's store; pinned to that region's node."""

    def __init__(self, stack_file: str, region: str):
        stack = StackConfig.load(stack_file)
        self.settings = Settings.from_env()
        target = next(r for r in stack.regions if r.name == region)
        self.replicator = Replicator(
            region, BuildStore(stack.redis_url),
            s3_for(stack.primary, stack.s3_access_key, stack.s3_secret_key),
            s3_for(target, stack.s3_access_key, stack.s3_secret_key, max_attempts=3),
            object_store_fetch(stack.primary.name, self.settings.replication_window),
            self.settings)
        threading.Thread(target=_loop, args=(self.replicator.tick, lambda: 0.5, threading.Event()),
                         daemon=True).start()
        scrubber = Scrubber(region, self.replicator.primary, self.replicator.target, self.settings.scrub_chunks_per_s)
        threading.Thread(target=_loop, args=(scrubber.run_once, lambda: self.settings.scrub_interval_s,
                                             threading.Event()), daemon=True).start()

    def peak_rss_bytes(self) -> int:
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def coordinator_name(dc: str) -> str:
    return f"coordinator-{dc}"


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1, max_concurrency=32)
class RolloutCoordinatorActor:
    """One datacenter's coordinator, pinned to its region. Hosts reach it through the API
    gateway; it wakes on desired-state changes (Redis pub/sub) and re-reads every 0.5 s anyway."""

    def __init__(self, stack_file: str, dc: str, region: str):
        from gantry.actors.coordinator import Coordinator
        stack = StackConfig.load(stack_file)
        target = next(r for r in stack.regions if r.name == region)
        store = DeployStore(stack.redis_url)
        primary = s3_for(stack.primary, stack.s3_access_key, stack.s3_secret_key)
        regional = s3_for(target, stack.s3_access_key, stack.s3_secret_key)
        self.coordinator = Coordinator(dc, region, stack.dcs_by_region(), store, BuildStore(stack.redis_url),
                                       lost_after_s=float(Settings.from_env().host_lost_s),
                                       origin={"endpoint": target.s3_endpoint, "bucket": target.bucket},
                                       peer_key=dc_key(stack.jwt_secret(), dc),
                                       repair=lambda digest: repair_chunk(region, primary, regional, digest, "host"))
        self.wakeup = threading.Event()

        def listen():
            while True:
                try:
                    pubsub = store.r.pubsub(ignore_subscribe_messages=True)
                    pubsub.subscribe(CHANNEL)
                    for _ in pubsub.listen():
                        self.wakeup.set()
                except Exception:
                    log.exception("desired-state subscription lost; re-subscribing")
                    threading.Event().wait(1)
        threading.Thread(target=listen, daemon=True).start()
        threading.Thread(target=_loop, args=(self.coordinator.tick, lambda: 0.5, self.wakeup), daemon=True).start()

    def heartbeat(self, report: dict) -> dict:
        return self.coordinator.heartbeat(
            report["hostID"], report["address"], report["state"], report.get("activeBuildID"),
            report.get("error") or "", report.get("artifact"), report.get("chunks") or [],
            bool(report.get("complete")), report.get("download"), report.get("targetBuildID"))

    def peers(self, host_id: str, artifact: str, wanted: list[str]) -> dict[str, list[str]]:
        return self.coordinator.peers(host_id, artifact, wanted)

    def repair(self, host_id: str, digest: str) -> bool:
        return self.coordinator.repair(host_id, digest)


def start_actors(stack_file: str) -> None:
    """Create the detached actors if they are not running (idempotent)."""
    for name, cls in ((SCHEDULER, BuildSchedulerActor), (MONITOR, BuildMonitorActor)):
        cls.options(name=name, namespace=NAMESPACE, lifetime="detached", get_if_exists=True).remote(stack_file)
    stack = StackConfig.load(stack_file)
    ChunkReaderActor.options(
        name=reader_name(stack.primary.name), namespace=NAMESPACE, lifetime="detached", get_if_exists=True,
        resources={region_resource(stack.primary.name): _PINNED}).remote(stack_file)
    for region in stack.regions:
        for dc in region.datacenters:
            RolloutCoordinatorActor.options(
                name=coordinator_name(dc), namespace=NAMESPACE, lifetime="detached", get_if_exists=True,
                resources={region_resource(region.name): _PINNED}).remote(stack_file, dc, region.name)
    for region in stack.regions[1:]:
        RegionReplicatorActor.options(
            name=replicator_name(region.name), namespace=NAMESPACE, lifetime="detached", get_if_exists=True,
            resources={region_resource(region.name): _PINNED}).remote(stack_file, region.name)
