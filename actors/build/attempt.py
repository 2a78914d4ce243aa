"""One build attempt, start to finish: fetch, configure, build in the sandbox, publish.

`BuildRunner` is plain Python (the `BuildWorker` actor in `actors.py` only calls it). The attempt holds
a lease (`lease_owner`); every write it makes is conditional on still holding it, so a worker
that was given up for dead can never overwrite the result of its replacement.
"""
from __future__ import annotations

import errno
import json
import logging
import os
import resource
import shutil
import socket
import stat
import tempfile
import threading
import time
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import redis

from gantry.actors import metrics
from gantry.actors.build import buildconfig, source
from gantry.actors.build.cache import BuildCache, CacheReport, Roots
from gantry.actors.build.sandbox.bwrap import Sandbox
from gantry.actors.build.scheduler import Size
from gantry.actors.build.sandbox.egress import Allow
from gantry.actors.build.sandbox.proxy import EgressProxy
from gantry.actors.build.sandbox.limits import Limits
from gantry.state import State, TransitionRefused
from gantry.state.gc import FenceLost
from gantry.state.logs import stamped
from gantry.artifacts.blobstore import s3_for
from gantry.artifacts.packing import OutputLimits, OutputTooLarge, UnsafeOutput
from gantry.artifacts.safepath import DIR_FLAGS, UnsafePath, open_beneath
from gantry.artifacts.publish import publish
from gantry.builds import BRANCH_RE, ENV_NAME_RE
from gantry.statuses import AttemptEnd, BuildStatus
from gantry.settings import Settings
from gantry.topology import StackConfig
from gantry.redact import redact
from gantry.uids import NoFreeUid, UidLease, lease

log = logging.getLogger("gantry.builder")


class InfraFault(Exception):
    """Not the build's fault: retried by the scheduler's rules."""


class BuildFailed(Exception):
    def __init__(self, reason: str, exit_code: int | None = None):
        super().__init__(reason)
        self.exit_code = exit_code


def out_of_disk(path, error: BaseException, min_free: int = 1 << 20) -> str:
    """Why a failure is the builder's disk being full ("" if it is not): the error says
    ENOSPC, or the filesystem of `path` has less than `min_free` bytes left after it."""
    try:
        free = shutil.disk_usage(path).free
    except OSError:
        free = None
    if getattr(error, "errno", None) == errno.ENOSPC or "No space left on device" in str(error) \
            or (free is not None and free < min_free):
        return f"the builder ran out of disk ({free if free is not None else '?'} bytes free in {path})"
    return ""


class CheckIn(threading.Thread):
    """Renews the heartbeat every `heartbeat_s` and watches for cancel or a lost lease every
    `poll_s`, from its own thread: a build that pegs the CPU cannot starve it (the build runs
    in another process; this thread only waits on Redis)."""

    def __init__(self, state: State, build_id: str, owner: str, heartbeat_s: float, poll_s: float):
        super().__init__(daemon=True, name=f"checkin-{build_id}")
        self.state, self.build_id, self.owner = state, build_id, owner
        self.heartbeat_s, self.poll_s = heartbeat_s, poll_s
        self.stop_requested = threading.Event()   # cancelled, or the lease is gone
        self.why = ""
        self._done = threading.Event()

    def run(self) -> None:
        next_beat = 0.0
        while not self._done.is_set():
            now = time.monotonic()
            beat = now >= next_beat
            try:
                status = self.state.builds.check_in(self.build_id, self.owner, heartbeat=beat)
                if beat:
                    next_beat = now + self.heartbeat_s
                if status != BuildStatus.BUILDING.value:
                    self.why = status or "build record missing"
                    self.stop_requested.set()
                    return
            except redis.RedisError as e:  # Redis restarting: keep building, keep trying
                log.warning("check-in for %s failed: %s", self.build_id, e)
            self._done.wait(self.poll_s)

    def finish(self) -> None:
        self._done.set()


class BuildRunner:
    def __init__(self, stack: StackConfig, settings: Settings, state: State | None = None):
        self.stack, self.settings = stack, settings
        # Redis calls ride out an outage for the lease's lifetime: past it, the build is another attempt's.
        self.state = state or State(stack.redis_url, ride_out_s=settings.heartbeat_s * settings.heartbeat_misses)

    def run(self, build_id: str, owner: str, worker: str = "") -> str:
        """Run the attempt on `worker` (a node name); returns the status it left the build in."""
        s = self.settings
        rec = self.state.builds.get(build_id)
        if rec is None or rec.get("leaseOwner") != owner:
            return AttemptEnd.LEASE_LOST
        worker = worker or socket.gethostname()
        self.state.builds.set_fields(build_id, {"workerNode": worker, "attempt": owner})
        project = self.state.projects.get(rec["projectName"]) or {}
        checkin = CheckIn(self.state, build_id, owner, s.heartbeat_s, s.cancel_poll_s)
        checkin.start()
        started, outcome = time.monotonic(), AttemptEnd.UNKNOWN
        workdir, uid = None, None
        try:
            uid = self._uid()
            workdir = self._workdir(build_id)
            self._log(build_id, f"attempt {owner} on {worker}: fetching {rec['commitSHA']}")
            output, save_cache = self._build(rec, project, workdir, checkin, uid.uid)
            try:
                outcome = self._publish(build_id, owner, output, checkin, save_cache)
            finally:
                os.close(output)
        except (BuildFailed, InfraFault, OSError) as e:
            full = out_of_disk(workdir or self.stack.builds_dir or self.stack.home, e)
            if isinstance(e, InfraFault) and not full:
                self._log(build_id, f"infrastructure fault: {e}")
                outcome = self._retry(build_id, owner, str(e))
            elif isinstance(e, OSError) and not full:
                raise
            else:   # the build's own failure, or a disk it filled: another attempt would fill it again
                error = f"{full}: {e}" if full else str(e)
                self._log(build_id, f"FAILED: {error}")
                outcome = self._finish(build_id, owner, BuildStatus.FAILED, {
                    "error": error, "exitCode": getattr(e, "exit_code", None),
                    "logTail": self.state.logs.tail(build_id, 2048)})
        except _Stopped:
            outcome = checkin.why
        finally:
            checkin.finish()
            if workdir is not None:
                shutil.rmtree(workdir, ignore_errors=True)
            if uid is not None:
                uid.release()
            metrics.build_duration().observe(time.monotonic() - started, tags={"outcome": outcome})
        return outcome

    def _uid(self) -> UidLease:
        """A uid no other build on this machine runs as now, and no account uses: its processes
        are out of reach of every other build's and every host hook's."""
        s = self.settings
        try:
            return lease(s.build_uids, Path(s.uid_lock_dir))
        except (NoFreeUid, OSError) as e:
            raise InfraFault(f"no build uid: {e}")

    def _workdir(self, build_id: str) -> Path:
        """A fresh directory for this attempt under the stack's builds directory, which must be
        ours: a directory planted by someone else (or a link to one) is refused, not used."""
        base = Path(self.stack.builds_dir or Path(self.stack.home) / "builds")
        try:
            os.mkdir(base, 0o711)
        except FileExistsError:
            pass
        except OSError as e:
            raise InfraFault(f"cannot create the builds directory {base}: {e}")
        check_private_dir(base)
        workdir = Path(tempfile.mkdtemp(prefix=f"{build_id}-", dir=base))
        os.chmod(workdir, 0o711)   # the sandbox user passes through to its workspace, lists nothing
        return workdir

    def _build(self, rec: dict, project: dict, workdir: Path, checkin: CheckIn,
               uid: int) -> tuple[int, Callable[[], None]]:
        """Check out, restore the cache, fetch, build. Returns the output directory's fd and what
        saves the cache (called once the output is stored, before the build is published)."""
        s, build_id = self.settings, rec["buildID"]
        checkout, home = workdir / "src", workdir / "home"
        os.mkdir(home, 0o700)
        settings = (json.loads(project.get("buildSettings") or "{}"), json.loads(project.get("deploySettings") or "{}"))
        found: list[buildconfig.BuildConfig] = []

        def config_of(tree: Path) -> bool:
            found.append(buildconfig.load(tree, buildconfig.Bounds.of(s), settings))
            return found[0].submodules
        try:
            source.fetch_commit(project.get("repoURL", ""), rec["commitSHA"], checkout, s.git_timeout_s,
                                s.max_source_bytes, mirrors=workdir.parent / ".mirrors", want_submodules=config_of,
                                log=lambda line: self._log(build_id, line), local_repos=self.state.projects.repo_urls)
        except source.SourceError as e:
            raise (BuildFailed(str(e)) if e.permanent else InfraFault(str(e)))
        except buildconfig.ConfigError as e:
            raise BuildFailed(str(e))
        cfg = found[0]
        reserved = json.loads(rec.get("resources") or "{}")
        cpus, memory_mb = self._size(build_id, cfg, reserved)
        self.state.builds.set_fields(build_id, {"configSource": cfg.source})
        self._log(build_id, f"settings from {cfg.source}; {cpus:g} cpus, {memory_mb} MB")
        limits = Limits(memory_bytes=memory_mb << 20, pids=s.build_pids, cpus=cpus,
                        timeout_s=cfg.timeout_s, file_bytes=s.build_file_bytes)
        sandbox = Sandbox(f"{build_id}-{rec.get('leaseOwner', '')[-8:]}", checkout, limits, uid, home=home)
        roots = Roots(checkout, home)
        report = CacheReport()
        cache = self._cache(build_id)
        branch = self._branch(rec, project)
        if cfg.cache:
            cache.restore(rec["projectName"], [f"commit/{rec['commitSHA']}", branch, project.get("defaultBranch") or "main"], cfg.cache, roots,
                          workdir, report)
            self.state.builds.set_fields(build_id, {"cache": json.dumps(asdict(report))})
        deadline = time.monotonic() + cfg.timeout_s
        if cfg.fetch:
            allow = Allow(json.loads(project.get("egressAllow") or "[]"))
            proxy = EgressProxy(allow, lambda line: self._log(build_id, line), uid)
            # A short path (a socket's is at most 107 bytes) in a directory only the build's uid enters.
            sockdir = Path(tempfile.mkdtemp(prefix="gantry-proxy-"))
            os.chown(sockdir, uid, uid)
            sock = sockdir / f"{uuid.uuid4().hex}.sock"
            try:
                try:
                    proxy.start(str(sock))
                except OSError as e:
                    raise InfraFault(f"cannot start the egress proxy: {e}")
                self._step(build_id, "fetch", cfg.fetch, sandbox, rec, checkin, deadline, cfg.timeout_s,
                           f"network only through gantry's proxy, to: {allow}", proxy_socket=sock)
            finally:
                proxy.stop()
                shutil.rmtree(sockdir, ignore_errors=True)
        self._step(build_id, "build", cfg.command, sandbox, rec, checkin, deadline, cfg.timeout_s, "no network")
        output = open_output(checkout, cfg.output)
        # hosts run these after switching to the release
        self.state.builds.set_fields(build_id, {"deployStart": cfg.deploy_start, "deployHealth": cfg.deploy_health})

        def save_cache() -> None:
            if cfg.cache:
                key = self._save_as(build_id, rec, project, branch, workdir.parent / ".mirrors")
                cache.save(rec["projectName"], key, cfg.cache, roots, build_id, report)
                self.state.builds.set_fields(build_id, {"cache": json.dumps(asdict(report))})
        return output, save_cache

    def _step(self, build_id: str, step: str, command: str, sandbox: Sandbox, rec: dict, checkin: CheckIn,
              deadline: float, timeout_s: float, network: str, proxy_socket: Path | None = None) -> None:
        """One sandboxed step: the fetch or the build. Both share the build's timeout."""
        self._log(build_id, f"{step} step: running `{command}` ({network})")
        sandbox.limits.timeout_s = max(0.0, deadline - time.monotonic())
        started = time.monotonic()
        result = sandbox.run(command, self._sandbox_env(rec), on_output=lambda b: self._append(build_id, b),
                             should_cancel=checkin.stop_requested.is_set, poll_s=0.2, proxy_socket=proxy_socket)
        took = time.monotonic() - started
        self.state.builds.set_fields(build_id, {f"{step}Seconds": f"{took:.3f}"})
        self._log(build_id, f"{step} step ended after {took:.1f}s")
        if result.cancelled:
            self._log(build_id, f"stopped: {checkin.why}")
            raise _Stopped()
        if result.sandbox_failed:
            raise InfraFault(result.reason(timeout_s))
        if result.timed_out or result.oom_killed or result.exit_code != 0:
            reason = result.reason(timeout_s)
            if step == "fetch":
                reason = "fetch step: " + reason.replace("build command", "fetch command")
            raise BuildFailed(reason, result.exit_code)

    def _size(self, build_id: str, cfg: buildconfig.BuildConfig, reserved: dict) -> tuple[float, int]:
        """The cgroup limits: what the settings ask, within what the scheduler reserved for the
        attempt (from the project's settings; a gantry.toml is only read once the build runs)."""
        default = Size.of(reserved, self.settings)
        cpus, memory_mb = cfg.cpus or default.cpus, cfg.memory_mb or default.memory_mb
        if reserved and (cpus > reserved["cpus"] or memory_mb > reserved["memoryMB"]):
            self._log(build_id, f"gantry.toml asks for {cpus:g} cpus and {memory_mb} MB; the project's settings "
                                f"reserved {reserved['cpus']:g} and {reserved['memoryMB']} on the builder: set "
                                f"build.cpus and build.memoryMB on the project to reserve more")
            cpus, memory_mb = min(cpus, reserved["cpus"]), min(memory_mb, reserved["memoryMB"])
        return cpus, memory_mb

    def _cache(self, build_id: str) -> BuildCache:
        s, stack = self.settings, self.stack
        return BuildCache(self.state.caches, s3_for(stack.primary, stack.s3_access_key, stack.s3_secret_key),
                          s.chunk_avg_bytes, OutputLimits(s.max_artifact_bytes, s.max_artifact_files),
                          lambda line: self._log(build_id, line), s.upload_concurrency)

    @staticmethod
    def _branch(rec: dict, project: dict) -> str:
        branch = json.loads(rec.get("buildDetails") or "{}").get("branch")
        return branch if isinstance(branch, str) and BRANCH_RE.match(branch) else project.get("defaultBranch") or "main"

    def _save_as(self, build_id: str, rec: dict, project: dict, branch: str, mirrors: Path) -> str:
        """The key a build's cache is saved under: its branch's, if the commit is on that branch
        (a build of any commit may say `branch: main`), else its own commit's."""
        if source.on_branch(project.get("repoURL", ""), rec["commitSHA"], branch, mirrors, self.settings.git_timeout_s):
            return branch
        self._log(build_id, f"cache: {rec['commitSHA'][:12]} is not on {branch}; saved for this commit only")
        return f"commit/{rec['commitSHA']}"

    def _publish(self, build_id: str, owner: str, output: int, checkin: CheckIn,
                 save_cache: Callable[[], None] = lambda: None) -> str:
        """Chunk and upload the output to the primary store, save the build cache, then BUILDING
        -> DEPLOYING with the replication rows and jobs for every other region, in one step (so
        the next build finds the cache once this one has ended). All of it as a writer that no
        garbage-collection sweep deletes under (`state/gc.py`)."""
        with self.state.retention.writing(f"publish:{build_id}", self.settings.gc_writer_lease_s, waiting=lambda: self._log(
                build_id, "waiting for a garbage-collection sweep to end")) as fence_held:
            return self._store(build_id, owner, output, checkin, save_cache, fence_held)

    def _store(self, build_id: str, owner: str, output: int, checkin: CheckIn, save_cache: Callable[[], None],
               fence_held: Callable[[], None]) -> str:
        s, stack = self.settings, self.stack
        self._log(build_id, f"publishing to the {stack.primary.name} blob store")
        try:
            manifest, stats = publish(output, s3_for(stack.primary, stack.s3_access_key, stack.s3_secret_key),
                                      s.chunk_avg_bytes, s.upload_concurrency,
                                      OutputLimits(s.max_artifact_bytes, s.max_artifact_files))
        except OutputTooLarge as e:
            raise BuildFailed(f"artifact too large: {e}")
        except UnsafeOutput as e:
            raise BuildFailed(f"unsafe build output: {e}")
        except Exception as e:  # boto3 already retried with backoff
            raise InfraFault(f"upload to the {stack.primary.name} blob store failed: {e}")
        if checkin.stop_requested.is_set():
            raise _Stopped()
        self._keep_cache(build_id, save_cache)
        self._log(build_id, f"artifact {manifest.manifest_digest}: {manifest.size} bytes in "
                            f"{len(manifest.chunks)} chunks ({stats.chunks_uploaded} uploaded, "
                            f"{stats.chunks_skipped} already stored)")
        fields = {"artifactDigest": manifest.manifest_digest, "artifactSize": manifest.size,
                  "artifactChunks": len(manifest.chunks),
                  "workerPeakRssBytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}
        primary_row = {"bytesTransferred": stats.bytes_uploaded, "chunksTransferred": stats.chunks_uploaded,
                       "bytesSkipped": stats.bytes_skipped, "chunksSkipped": stats.chunks_skipped}
        others = [r.name for r in stack.regions[1:]]
        try:
            fence_held()
        except FenceLost as e:
            raise InfraFault(str(e))
        try:
            status = self.state.replication.publish(build_id, owner, fields, stack.primary.name, others, primary_row)
        except TransitionRefused as e:  # cancelled or given up on while uploading
            self._log(build_id, f"not published: {e}")
            return e.current or AttemptEnd.UNKNOWN
        self._log(build_id, f"stored; replicating to {', '.join(others)}" if others else "stored")
        return status.value

    def _keep_cache(self, build_id: str, save_cache: Callable[[], None]) -> None:
        """The build is stored: a cache that cannot be saved costs the next build time, not this one."""
        try:
            save_cache()
        except Exception as e:
            log.warning("build %s: cache not saved: %s", build_id, e)
            self._log(build_id, f"cache: not saved: {e}")

    def _finish(self, build_id: str, owner: str, to: BuildStatus, fields: dict) -> str:
        try:
            self.state.builds.transition(build_id, to, lease_owner=owner, fields=fields)
            return to.value
        except TransitionRefused as e:
            return e.current or AttemptEnd.UNKNOWN

    def _retry(self, build_id: str, owner: str, reason: str) -> str:
        rec = self.state.builds.get(build_id)
        if not rec or rec.get("leaseOwner") != owner:
            return AttemptEnd.LEASE_LOST
        s = self.settings
        try:
            return self.state.builds.retry_or_dead(
                rec, reason, s.max_retries, s.retry_backoff_s, s.retry_backoff_max_s).value
        except TransitionRefused as e:
            return e.current or AttemptEnd.UNKNOWN

    def _sandbox_env(self, rec: dict) -> dict[str, str]:
        details = json.loads(rec.get("buildDetails") or "{}")
        env = {k: str(v) for k, v in (details.get("env") or {}).items() if ENV_NAME_RE.match(k)}
        env.update(GANTRY_BUILD_ID=rec["buildID"], GANTRY_COMMIT_SHA=rec["commitSHA"],
                   GANTRY_PROJECT=rec["projectName"])
        return env

    def _append(self, build_id: str, data: bytes) -> None:
        try:
            self.state.logs.append(build_id, data.decode(errors="replace"), self.settings.log_max_bytes)
        except redis.RedisError:
            pass  # the log is best effort; the result is not

    def _log(self, build_id: str, line: str) -> None:
        self._append(build_id, stamped(redact(line)).encode())


def check_private_dir(path: Path) -> None:
    """`path` is a real directory owned by us that nobody else may write to."""
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
        raise InfraFault(f"{path} is not a directory of uid {os.geteuid()} closed to others "
                         f"(uid {st.st_uid}, mode {stat.filemode(st.st_mode)}); refusing to build there")


def open_output(checkout: Path, output: str) -> int:
    """The build's output directory as an fd, opened beneath the checkout without following a
    single symlink: build code controls every name in the checkout."""
    root = os.open(checkout, DIR_FLAGS)
    try:
        return open_beneath(root, output)
    except UnsafePath as e:
        raise BuildFailed(f"output '{output}' leaves the checkout: {e}")
    except (FileNotFoundError, NotADirectoryError):
        raise BuildFailed(f"output directory '{output}' was not produced")
    finally:
        os.close(root)


class _Stopped(Exception):
    """Cancelled, or the lease was taken away: stop without writing a result."""

