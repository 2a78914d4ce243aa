"""The build plane's Ray shells: build attempts, and the detached scheduler and monitor actors.

Each only wires a plain class (`BuildRunner`, `Scheduler`, `HeartbeatMonitor`, `Archiver`) to
Ray and runs its loop. The actors pin to the head node (`gantry-head`).
"""
from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import replace

import ray
import redis
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from gantry.actors import metrics
from gantry.archive.files import Archiver
from gantry.actors.retention.collector import GarbageCollector, Options
from gantry.actors.build.attempt import BuildRunner
from gantry.actors.build.monitor import HeartbeatMonitor
from gantry.actors.build.scheduler import Scheduler, Size
from gantry.actors.loop import start_loop
from gantry.state import State, audit
from gantry.state.logs import stamped
from gantry.artifacts.blobstore import s3_for
from gantry.constants import BUILD_CPU, BUILD_MEMORY, BUILDER_RESOURCE, HEAD, NAMESPACE, WORKER_PREFIX, worker_name
from gantry.settings import Settings
from gantry.topology import StackConfig

log = logging.getLogger("gantry.actors.build")


@ray.remote(num_cpus=0, max_restarts=0, max_concurrency=2)
class BuildWorker:
    """One build attempt on a builder node, started on creation. Placed with its build's size as
    resources (`BUILD_CPU`, `BUILD_MEMORY`), so Ray holds a builder to what it has.

    A detached actor rather than a plain task: a task dies with its owner, and a running build
    must outlive a scheduler restart. Named after its lease so a restarted scheduler finds it.
    """

    def __init__(self, build_id: str, owner: str, stack_file: str):
        self.done = threading.Event()
        self.outcome: str | BaseException = ""
        node = ray.get_runtime_context().get_node_id()
        runner = BuildRunner(StackConfig.load(stack_file), Settings())

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


@ray.remote(num_cpus=0, resources=HEAD, max_restarts=-1, max_task_retries=-1, max_concurrency=4)
class BuildSchedulerActor:
    def __init__(self, stack_file: str):
        self.stack_file = stack_file
        self.settings = Settings()
        self.state = State(StackConfig.load(stack_file).redis_url)
        self.inflight: dict[ray.ObjectRef, tuple] = {}  # result ref -> (buildID, owner, worker, node, size)
        self._doomed: set = set()      # attempt actors to kill that could not be killed yet
        self._suspect: dict[str, float] = {}   # node ID -> until when no attempt goes there
        self._next_reconcile = 0.0     # at start-up, then every `reconcile_s`
        self._sizes: dict[str, Size] = {}   # project -> its builds' size, for one step
        self.lock = threading.Lock()
        self.scheduler = Scheduler(self.state.builds, self.settings, self._nodes, self._dispatch, self._size_of,
                                   note=self._note)
        try:
            self._reattach()
        except Exception:
            log.exception("could not re-attach to running builds; the monitor will recover them")
        self.wakeup = threading.Event()
        start_loop(self._step, lambda: self.settings.scheduler_poll_s, self.wakeup)

    def _builder_nodes(self) -> dict[str, Size]:
        """Builder nodes to place attempts on (node ID -> its size): alive in Ray's view, and not
        one an attempt just died on. Ray lists a dead node's capacity for some seconds; an
        attempt placed there would be lost too, and charged to its build a second time."""
        now = time.monotonic()
        self._suspect = {n: until for n, until in self._suspect.items() if until > now}
        return {n["NodeID"]: Size(float(n["Resources"].get(BUILD_CPU, 0)), int(n["Resources"].get(BUILD_MEMORY, 0)))
                for n in ray.nodes()
                if n["Alive"] and n["Resources"].get(BUILDER_RESOURCE) and n["NodeID"] not in self._suspect}

    def _nodes(self) -> dict[str, tuple[Size, Size]]:
        """Each builder's size and its room now: what the attempts in flight there do not hold."""
        with self.lock:
            held = [(node, size) for (_, _, _, node, size) in self.inflight.values()]
        nodes = self._builder_nodes()
        room = dict(nodes)
        for node, size in held:
            if node in room:
                room[node] = room[node] - size
        return {n: (nodes[n], room[n]) for n in nodes}

    def _capacity(self) -> float:
        return sum(size.cpus for size in self._builder_nodes().values())

    def _size_of(self, rec: dict) -> Size:
        """What a build reserves: its project's cpus and memoryMB, or the defaults (read once a
        step per project: the scheduler sizes every queued build it looks at)."""
        name = rec["projectName"]
        if name not in self._sizes:
            build = json.loads((self.state.projects.get(name) or {}).get("buildSettings") or "{}")
            self._sizes[name] = Size.of(build, self.settings)
        return self._sizes[name]

    def _note(self, build_id: str, line: str) -> None:
        try:
            self.state.logs.append(build_id, stamped(line), self.settings.log_max_bytes)
        except redis.RedisError:
            pass   # the log is best effort

    def _dispatch(self, build_id: str, owner: str, node: str, size: Size) -> None:
        self.state.builds.set_fields(build_id, {"resources": json.dumps({"cpus": size.cpus, "memoryMB": size.memory_mb})})
        # pinned: Ray alone might still pick a node that is already gone
        worker = BuildWorker.options(name=worker_name(owner), namespace=NAMESPACE, lifetime="detached",
                                     resources={BUILD_CPU: size.cpus, BUILD_MEMORY: size.memory_mb},
                                     scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False)
                                     ).remote(build_id, owner, self.stack_file)
        self._track(build_id, owner, worker, node, size)

    def _track(self, build_id: str, owner: str, worker, node: str | None, size: Size) -> None:
        with self.lock:
            self.inflight[worker.result.remote()] = (build_id, owner, worker, node, size)

    def _reattach(self) -> None:
        """After a restart: follow attempts started by the previous incarnation."""
        for rec in self.state.builds.building():
            owner = rec.get("leaseOwner")
            try:
                worker = ray.get_actor(worker_name(owner), namespace=NAMESPACE)
            except ValueError:
                continue  # never started or already gone: the heartbeat monitor handles it
            size = Size.of(json.loads(rec.get("resources") or "{}"), self.settings)
            self._track(rec["buildID"], owner, worker, rec.get("workerNode") or None, size)

    def _step(self) -> None:
        with self.lock:
            refs = list(self.inflight)
        done, _ = ray.wait(refs, num_returns=len(refs), timeout=0) if refs else ([], [])
        for ref in done:
            with self.lock:
                build_id, owner, worker, node, _ = self.inflight[ref]
            try:
                ray.get(ref)
            except Exception as e:  # the attempt died: its worker or node was lost, or it raised
                # (Redis away, say): only a worker that died makes its node suspect. Place nothing
                # there until Ray has made up its mind about the node.
                if node and not isinstance(e, ray.exceptions.RayTaskError):
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
        self._sizes.clear()
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
        leases = {rec.get("leaseOwner") for rec in self.state.builds.building()}
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
        return {"inflight": inflight, "builderCpus": self._capacity(), "queueDepth": self.state.builds.queue_depth()}


@ray.remote(num_cpus=0, resources=HEAD, max_restarts=-1, max_task_retries=-1, max_concurrency=4)
class BuildMonitorActor:
    """Heartbeat sweeps, the build gauges, and the periodic move of old builds to the archive."""

    def __init__(self, stack_file: str):
        self.settings = s = Settings()
        stack = StackConfig.load(stack_file)
        self.state = State(stack.redis_url)
        self.monitor = HeartbeatMonitor(self.state.builds, s)
        stores = {r.name: s3_for(r, stack.s3_access_key, stack.s3_secret_key) for r in stack.regions}
        self.archiver = Archiver(self.state, stores[stack.primary.name])
        self._archive_lock = threading.Lock()
        self.collector = GarbageCollector(self.state, stack, stores, Options(s.gc_grace_s, s.gc_drain_s),
                                          self._archive_move)
        self._gc_lock = threading.Lock()
        self._gc_due = False      # the first scheduled pass comes one interval after the start
        for step, period in ((self.monitor.sweep, max(0.5, s.heartbeat_s / 2)),
                             (self._gauges, s.metrics_interval_s),
                             (self._scheduled_archive, s.archive_interval_s),
                             (self._scheduled_gc, s.gc_interval_s)):
            start_loop(step, lambda p=period: p)

    def _gauges(self) -> None:
        metrics.queue_depth().set(self.state.builds.queue_depth())
        gauge = metrics.builds_by_status()
        for status, n in self.state.builds.status_counts().items():
            gauge.set(n, tags={"status": status})

    def _scheduled_archive(self) -> None:
        moved = self.archive(self.settings.archive_after_s)
        if moved:
            self.state.audit.record(audit.prepare(
                "gantry-archiver", "archive", None, None, {"olderThanS": self.settings.archive_after_s, "moved": moved}))

    def archive(self, older_than_s: float) -> dict[str, int]:
        """Move finished builds older than `older_than_s` to the archive; returns counts per project."""
        with self._archive_lock:
            return self.archiver.run(self.state.clock() - int(older_than_s * 1000))

    def _scheduled_gc(self) -> None:
        if self._gc_due:
            self.gc(False, None, "gantry-gc")
        self._gc_due = True

    def _archive_move(self, project: str, build_ids: list[str]) -> int:
        with self._archive_lock:
            return self.archiver.move(project, build_ids)

    def gc(self, dry_run: bool, grace_s: float | None, user: str) -> dict:
        """One garbage-collection pass (retention/): one at a time; `grace_s` overrides the setting."""
        with self._gc_lock:
            if grace_s is not None:
                self.collector.o = replace(self.collector.o, grace_s=grace_s)
            try:
                return self.collector.run(dry_run, user)
            finally:
                self.collector.o = replace(self.collector.o, grace_s=self.settings.gc_grace_s)

    def ping(self) -> bool:
        return True
