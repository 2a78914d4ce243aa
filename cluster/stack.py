"""The local multi-region stack: Redis, one S3 server per region, a Ray head plus a node per
region and per builder, the detached actors and the Serve API, all on loopback.

Every process is started in its own session and recorded in <home>/pids.json; `down` stops
exactly those process groups and nothing else.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import urllib.request
import uuid
from dataclasses import asdict
from pathlib import Path

from gantry.cluster.prometheus import home_of, start_prometheus, write_node_targets
from gantry.cluster.serve_api import api_env, deploy_services
from gantry.cluster.services import redis_ping, start_redis, start_s3
from gantry.cluster.shape import BuilderSpec, HostSpec, Shape, to_start
from gantry.cluster.processes import HOST, alive, bin_path, free_port, loopback, stop_group, stop_groups, wait_for
from gantry.constants import BUILD_CPU, BUILD_MEMORY, BUILDER_RESOURCE, HEAD_RESOURCE, region_resource
from gantry.settings import Settings
from gantry.tls import client_context
from gantry.topology import StackConfig, write_private

RAY_IP = "127.0.0.2"   # Ray rewrites 127.0.0.1 to the external address; 127.0.0.2 stays local


def node_marker(name: str) -> str:
    """A resource that only the node we started as `name` has, to tell our nodes apart."""
    return f"gantry-node:{name}"


class Stack:
    def __init__(self, home: str | Path):
        self.home = Path(home).resolve()
        self.pids_file = self.home / "pids.json"
        self.stack_file = self.home / "stack.json"
        self.shape_file = self.home / "shape.json"
        self._starting = False   # while `up` runs, the record stays as it was until the whole stack is up
        self.logs = self.home / "logs"

    # --- bookkeeping ----------------------------------------------------------------------

    def pids(self) -> dict:
        return json.loads(self.pids_file.read_text()) if self.pids_file.exists() else {}

    def _record(self, name: str, proc: subprocess.Popen, **meta) -> None:
        pids = self.pids()
        pids[name] = {"pid": proc.pid, **meta}
        write_private(self.pids_file, json.dumps(pids, indent=2).encode())   # holds secrets of env

    def _spawn(self, name: str, argv: list[str], env: dict | None = None, **meta) -> subprocess.Popen:
        self.logs.mkdir(parents=True, exist_ok=True)
        out = open(self.logs / f"{name}.log", "ab")
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env={**os.environ, **(env or {})})
        out.close()
        self._record(name, proc, argv=argv, env=env or {}, **meta)
        return proc

    def respawn(self, name: str) -> None:
        """Start a stopped service again exactly as it was started (same port, same data)."""
        p = self.pids()[name]
        meta = {k: v for k, v in p.items() if k not in ("pid", "argv", "env")}
        self._spawn(name, p["argv"], p["env"], **meta)
        if "port" in p:
            wait_for(lambda: socket.create_connection((HOST, p["port"]), timeout=1).close() or True,
                     30, f"{name} to listen again")

    def config(self) -> StackConfig:
        return StackConfig.load(self.stack_file)

    def running(self) -> dict[str, bool]:
        return {name: alive(p["pid"]) for name, p in self.pids().items()}

    def ray_env(self) -> dict[str, str]:
        return {"RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_UV_RUN_RUNTIME_ENV": "0",
                "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(self.home / "ray.token"),
                "GANTRY_STACK_FILE": str(self.stack_file), "GANTRY_HOME": str(self.home),
                **(api_env(self.config().api_url) if self.stack_file.exists() else {})}

    def api_healthy(self, url: str | None = None) -> bool:
        cfg = self.config()
        try:
            with urllib.request.urlopen(f"{url or cfg.api_url}/healthz", timeout=15,
                                        context=client_context(cfg.ca_file) if cfg.ca_file else None) as r:
                return json.loads(r.read()).get("ok") is True
        except Exception:
            return False

    # --- up -------------------------------------------------------------------------------

    def up(self, api_port: int | None = None, regions: tuple[str, ...] | None = None, builders: int | None = None,
           hosts_per_dc: int | None = None, s3_bwlimit_mbps: float | None = None, say=print,
           builder_cpus: float | None = None, builder_memory_mb: int | None = None,
           plain_http: bool | None = None) -> StackConfig:
        """`builders` nodes, each offering builds `builder_cpus` and `builder_memory_mb` (by default
        as much memory as that many default-sized builds hold). What is not given is what this
        home's stack last had (shape.json), else the defaults. Every listener serves TLS with
        certificates from the stack's CA (<home>/tls), unless `plain_http`."""
        if self.stack_file.exists() and self.pids() and all(self.running().values()) and self.api_healthy():
            say(f"already running: {self.config().api_url} (home {self.home})")
            return self.config()
        was = Shape.load(self.shape_file)
        shape = to_start(was, api_port, regions, builders, builder_cpus, builder_memory_mb, hosts_per_dc,
                         s3_bwlimit_mbps, Settings().build_memory_bytes >> 20, plain_http)
        keep = self._agents_that_stay(was, shape)
        if any(self.running().values()):
            say("a previous stack in this home is partly running; " + (
                f"restarting its control plane ({len(keep)} running host agents stay)" if keep else "stopping it first"))
            self.down(say=lambda *_: None, keep=keep)
        if was:
            say(f"this home ran {was.describe()}; starting {shape.describe()}" if shape != was
                else f"bringing back the stack this home ran: {shape.describe()}")
        self.home.mkdir(parents=True, exist_ok=True)
        os.chmod(self.home, 0o711)   # others may pass through (to a build's workspace), list nothing
        write_private(self.pids_file, json.dumps({k: v for k, v in self.pids().items() if k in keep}).encode())
        self._secret("jwt.secret", lambda: secrets.token_hex(32))
        self._secret("ray.token", lambda: uuid.uuid4().hex)
        s3_key = self._secret("s3.credentials", lambda: f"gantry{secrets.token_hex(6)},{secrets.token_hex(20)}")
        redis_password = self._secret("redis.password", lambda: secrets.token_hex(24))
        access_key, secret_key = s3_key.split(",")
        if shape.plain_http:
            say("WARNING: plain HTTP everywhere (--insecure-plain-http): tokens, peer credentials and "
                "presigned URLs cross the network readable by anyone on the path")
            tls = ("", "", "")
        else:   # the control plane's listeners are all on these addresses
            from gantry.cluster.certs import StackCA   # cryptography: the control plane's install only
            ca = StackCA(self.home / "tls").ensure()
            tls = (str(ca.ca_file), *map(str, ca.issue("server", [HOST, RAY_IP, "localhost"])))
        scheme = "http" if shape.plain_http else "https"
        self._starting = True
        try:
            redis_url = start_redis(self, redis_password, *tls)
            region_cfgs = [start_s3(self, r, access_key, secret_key, shape.s3_bwlimit_mbps, *tls) for r in shape.regions]
            prometheus_url = start_prometheus(self, *tls)
            gcs_port, dashboard_port = free_port(), free_port()
            cfg = StackConfig(
                home=str(self.home), redis_url=redis_url, regions=region_cfgs,
                s3_access_key=access_key, s3_secret_key=secret_key, ca_file=tls[0], tls_cert_file=tls[1],
                tls_key_file=tls[2], jwt_secret_file=str(self.home / "jwt.secret"), api_url=f"{scheme}://{HOST}:{shape.api_port}",
                ray_address=f"{RAY_IP}:{gcs_port}", dashboard_url=f"http://{HOST}:{dashboard_port}",
                prometheus_url=prometheus_url, prometheus_targets_dir=str(home_of(self) / "targets"), builds_dir=self._builds_dir(), builder_cpus=shape.builders[0].cpus if shape.builders else 1.0,
                builder_memory_mb=shape.builders[0].memory_mb if shape.builders else Settings().build_memory_bytes >> 20)
            cfg.save(self.stack_file)
            self._start_ray_head(gcs_port, dashboard_port)
            self._wait_nodes(1)
            # One node at a time: on a small machine concurrent raylet start-ups time out.
            for i, r in enumerate(shape.regions):
                self._start_ray_node(f"ray-region-{r}", {region_resource(r): 1000}, gcs_port)
                self._wait_nodes(2 + i, f"ray-region-{r}")
            for i, b in enumerate(shape.builders):
                self._wait_nodes(2 + len(shape.regions) + i, self.add_builder(i, b.cpus, b.memory_mb))
            self._deploy(shape.api_port)
            wait_for(lambda: self.api_healthy(cfg.api_url), 120, "the API to answer")
            for h in (h for h in shape.hosts if f"host-{h.host_id}" not in keep):
                self.start_host(h.host_id, h.region, h.dc, h.max_up_mbps, h.max_down_mbps, h.peers, list(h.projects))
        except BaseException:
            say(f"start-up failed; logs in {self.logs}. Stopping what was started.")
            self.down(say=lambda *_: None)
            raise
        finally:
            self._starting = False
        self._save_shape()
        say(f"gantry is up: API {cfg.api_url}, Ray dashboard {cfg.dashboard_url}, home {self.home}"
            + (f"; clients trust the stack's CA {cfg.ca_file} (GANTRY_CA)" if cfg.ca_file else ""))
        return cfg

    def _agents_that_stay(self, was: Shape | None, shape: Shape) -> set[str]:
        """Running host agents that `up` leaves running: a host's agent needs only the API, at
        the same URL and CA, so the loss of the control plane (the Ray head, say) need not restart it."""
        if not was or (was.api_port, was.plain_http) != (shape.api_port, shape.plain_http):
            return set()
        running = self.running()
        return {f"host-{h.host_id}" for h in shape.hosts if h in was.hosts and running.get(f"host-{h.host_id}")}

    def _secret(self, name: str, make) -> str:
        path = self.home / name
        if not path.exists():
            write_private(path, make().encode())
        os.chmod(path, 0o600)
        return path.read_text().strip()

    def _builds_dir(self) -> str:
        """Build workspaces: <home>/builds, created fresh by us (0711), when the sandbox user can
        pass through the home's parents; otherwise a fresh directory with a random name in /tmp."""
        if all(os.stat(p).st_mode & 0o001 for p in self.home.parents):
            path = self.home / "builds"
            if path.is_symlink():
                path.unlink()
            shutil.rmtree(path, ignore_errors=True)   # fresh: nothing left over, nothing planted
            os.mkdir(path, 0o711)
        else:
            path = Path(tempfile.mkdtemp(prefix="gantry-builds-"))
        os.chmod(path, 0o711)
        return str(path)

    def restart_redis(self, kill_signal: int = signal.SIGKILL) -> None:
        """Kill Redis (by default with SIGKILL, as a crash) and start it again on its port."""
        self.stop_process("redis", kill_signal)
        self.respawn("redis")
        wait_for(lambda: redis_ping(self.config().redis_url), 30, "redis")

    def _short_dir(self, kind: str) -> str:
        """A per-stack directory under /tmp: short (Unix socket paths are limited to 107 bytes)
        and reachable by the sandbox user (a home under /root or a pytest tmp dir is 0700)."""
        return f"/tmp/{kind}-{hashlib.sha1(str(self.home).encode()).hexdigest()[:10]}"

    def _ray_temp_dir(self) -> str:
        return self._short_dir("gantry-ray")

    def _start_ray_head(self, gcs_port: int, dashboard_port: int) -> None:
        argv = [bin_path("ray"), "start", "--head", "--block", f"--node-ip-address={RAY_IP}",
                f"--port={gcs_port}", "--num-cpus=1", "--resources", json.dumps({HEAD_RESOURCE: 1000}),
                "--include-dashboard=true", f"--dashboard-host={HOST}", f"--dashboard-port={dashboard_port}",
                f"--ray-client-server-port={free_port()}", f"--dashboard-agent-listen-port={free_port()}",
                f"--metrics-export-port={(metrics_port := free_port())}", "--object-store-memory", str(256 << 20),
                f"--temp-dir={self._ray_temp_dir()}", "--disable-usage-stats"]
        # The head goes last, when nothing is left to drain its actors to: Ray's default 30 s drain
        # on SIGTERM would only wait out `gantry down`'s grace.
        self._spawn("ray-head", argv, {**self.ray_env(), "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0"},
                    metrics_port=metrics_port)
        write_node_targets(self, RAY_IP)
        wait_for(lambda: socket.create_connection((RAY_IP, gcs_port), timeout=1).close() or True, 60, "the Ray head")

    def _start_ray_node(self, name: str, resources: dict, gcs_port: int, **meta) -> None:
        resources = {**resources, node_marker(name): 1}
        argv = [bin_path("ray"), "start", "--block", f"--address={RAY_IP}:{gcs_port}",
                f"--node-ip-address={RAY_IP}", "--num-cpus=1", "--resources", json.dumps(resources),
                f"--dashboard-agent-listen-port={free_port()}", f"--metrics-export-port={(metrics_port := free_port())}",
                "--object-store-memory", str(256 << 20), "--disable-usage-stats"]
        self._spawn(name, argv, self.ray_env(), resources=resources, metrics_port=metrics_port, **meta)
        write_node_targets(self, RAY_IP)   # the stack's Prometheus scrapes it

    def add_builder(self, index: int, cpus: float | None = None, memory_mb: int | None = None) -> str:
        """A builder node (the stack's size unless told); returns its name."""
        cfg = self.config()
        gcs_port = int(cfg.ray_address.rsplit(":", 1)[1])
        name = f"ray-builder-{index}"
        spec = BuilderSpec(cpus or cfg.builder_cpus, memory_mb or cfg.builder_memory_mb)
        self._start_ray_node(name, {BUILDER_RESOURCE: 1, BUILD_CPU: spec.cpus, BUILD_MEMORY: spec.memory_mb}, gcs_port,
                             builder=asdict(spec))
        self._save_shape()
        return name

    def start_host(self, host_id: str, region: str, dc: str, max_up_mbps: float = 0,
                   max_down_mbps: float = 0, peers: bool = True, projects: list[str] = (),
                   agent: str | None = None) -> None:
        """A node daemon for one host, its files under <home>/hosts/<hostID>/; `agent` is the
        `gantry-node` to run (default: this install's)."""
        from gantry.auth import issue_host
        cfg = self.config()
        address = self._host_address(host_id)
        argv = [agent or bin_path("gantry-node"), "--home", str(self.home / "hosts" / host_id), "--host-id", host_id,
                "--region", region, "--dc", dc, "--api", cfg.api_url,
                "--listen", f"{address}:{free_port(address)}",
                "--max-up", str(max_up_mbps), "--max-down", str(max_down_mbps)] + ([] if peers else ["--no-peers"])
        argv += [f for p in projects for f in ("--project", p)]
        if cfg.plain_http:
            argv.append("--insecure-plain-http")
        else:   # its peer server's certificate, for the address its peers reach it at
            from gantry.cluster.certs import StackCA
            cert, key = StackCA(Path(cfg.ca_file).parent).issue(f"host-{host_id}", [address])
            argv += ["--ca", cfg.ca_file, "--cert", str(cert), "--key", str(key)]
        # its token names the projects it may serve, and it holds no store credentials
        env = {"GANTRY_HOST_TOKEN": issue_host(cfg.jwt_secret(), host_id, dc, list(projects) or None)}
        spec = HostSpec(host_id, region, dc, tuple(projects), max_up_mbps, max_down_mbps, peers)
        self._spawn(f"host-{host_id}", argv, env, host=True, spec=asdict(spec))
        self._save_shape()

    def _save_shape(self) -> None:
        """Record what this stack is made of now, for the next `gantry up` in this home."""
        if not self._starting:
            Shape.of(self.config(), self.pids()).save(self.shape_file)

    def add_host(self, region: str, dc: str | None = None, host_id: str | None = None,
                 projects: list[str] = ()) -> str:
        """One more node daemon in this running stack (as `gantry host add`); returns its ID."""
        dc = self.config().datacenter(region, dc)
        running = set(self.hosts())
        host_id = host_id or next(f"{dc}-h{i}" for i in range(10_000) if f"{dc}-h{i}" not in running)
        if host_id in running:
            raise ValueError(f"host {host_id} is already running")
        self.start_host(host_id, region, dc, projects=projects)
        return host_id

    def _host_address(self, host_id: str) -> str:
        """Each local host's own loopback address, so peers are distinct machines to each other;
        a restarted host keeps its address."""
        hosts = self.home / "hosts"
        mine = hosts / host_id / "address"
        if mine.exists():
            return mine.read_text().strip()
        taken = {p.read_text().strip() for p in hosts.glob("*/address")}
        address = next(loopback(n) for n in range(1, 64_000) if loopback(n) not in taken)
        mine.parent.mkdir(parents=True, exist_ok=True)
        mine.write_text(address)
        return address

    def hosts(self) -> list[str]:
        return [name[len("host-"):] for name, p in self.pids().items() if p.get("host")]

    def connect(self):
        """ray.init against this stack (namespace gantry)."""
        os.environ.update(self.ray_env())
        import ray
        from ray._private.authentication.authentication_token_setup import _enable_token_auth
        _enable_token_auth()  # Ray read RAY_AUTH_MODE when first imported; make it see "token"
        if not ray.is_initialized():
            ray.init(address=self.config().ray_address, namespace="gantry", log_to_driver=False)
        return ray

    def _wait_nodes(self, n: int, name: str | None = None) -> None:
        """Wait for `n` live Ray nodes. The node `name` just started: if its `ray start` gave up
        (on a loaded machine a raylet can time out registering with the GCS), start it again,
        twice at most."""
        ray = self.connect()
        again = [2]

        def up() -> bool:
            if name and again[0] and not self.running().get(name, True):
                again[0] -= 1
                print(f"{name} exited while starting; starting it again (logs: {self.logs / name}.log)", flush=True)
                self.respawn(name)
            return sum(1 for x in ray.nodes() if x["Alive"]) >= n
        wait_for(up, 180 if name else 90, f"{n} Ray nodes", 0.5)

    def _deploy(self, api_port: int) -> None:
        self.connect()
        deploy_services(str(self.stack_file), api_port)

    # --- down and faults ------------------------------------------------------------------

    def remove_host(self, host_id: str) -> None:
        """Stop a host's daemon and forget it: the stack is whole without it (`gantry host remove`)."""
        self.remove(f"host-{host_id}")

    def remove(self, name: str) -> None:
        """Stop a process and forget it (a stopped process left in pids.json makes `up` see a
        partly running stack, and start it all again)."""
        self.stop_process(name)
        self.forget(name)
        self._save_shape()

    def forget(self, name: str) -> None:
        pids = self.pids()
        pids.pop(name, None)
        write_private(self.pids_file, json.dumps(pids, indent=2).encode())

    def stop_process(self, name: str, sig: int = signal.SIGTERM, grace_s: float = 10) -> None:
        """Stop the process group we started as `name` (see `processes.stop_group`); nothing else."""
        p = self.pids().get(name)
        if p:
            stop_group(p["pid"], sig, grace_s)

    def node_name(self, node_id: str) -> str | None:
        """Which of our Ray nodes has this Ray node id."""
        ray = self.connect()
        for n in ray.nodes():
            if n["NodeID"] == node_id:
                return next((k.split(":", 1)[1] for k in n["Resources"] if k.startswith("gantry-node:")), None)
        return None

    def kill_node(self, name: str) -> None:
        """Crash a Ray node as a machine crash would: SIGKILL every process of it at once (a build
        worker outlives its raylet long enough to finish a build)."""
        self.stop_process(name, signal.SIGKILL)

    def down(self, say=print, keep: set[str] = frozenset()) -> None:
        """Stop every process `up` started in this home (but those named in `keep`)."""
        pids = self.pids()
        if not pids:
            say(f"nothing running in {self.home}")
            return
        try:
            import ray
            if ray.is_initialized():
                ray.shutdown()
        except Exception:
            pass
        # hosts, then the Ray worker nodes, the head, and the services last; each tier at once
        order = sorted(set(pids) - set(keep),
                       key=lambda n: (not n.startswith("host-"), n == "ray-head", not n.startswith("ray-"), n))
        headless = "ray-head" in pids and not alive(pids["ray-head"]["pid"])
        for (_, _, ray_node), tier in itertools.groupby(
                order, key=lambda n: (n.startswith("host-"), n == "ray-head", n.startswith("ray-"))):
            # a Ray node whose head is gone cannot drain: it would only wait out the grace
            stop_groups([pids[name]["pid"] for name in tier], signal.SIGKILL if ray_node and headless else signal.SIGTERM)
        if keep:
            write_private(self.pids_file, json.dumps({k: pids[k] for k in keep if k in pids}, indent=2).encode())
        else:
            self.pids_file.unlink(missing_ok=True)
        shutil.rmtree(self._short_dir("gantry-ray"), ignore_errors=True)
        if self.stack_file.exists():
            shutil.rmtree(self.config().builds_dir, ignore_errors=True)
        say(f"stopped {len(order)} processes started in {self.home}")

    def status(self) -> dict:
        running = self.running()
        metrics = {name: f"http://{RAY_IP}:{p['metrics_port']}/metrics"
                   for name, p in self.pids().items() if p.get("metrics_port")}
        cfg = self.config() if self.stack_file.exists() else None
        return {
            "home": str(self.home), "running": bool(running) and all(running.values()),
            "processes": running,
            "apiURL": cfg.api_url if cfg else None,
            "caFile": cfg.ca_file if cfg else None,   # what clients check the listeners' certificates against
            "apiHealthy": self.api_healthy() if cfg and running else False,
            "dashboardURL": cfg.api_url + "/ui" if cfg else None,
            "rayDashboardURL": cfg.dashboard_url if cfg else None,
            # Each Ray node's metrics agent serves Prometheus text; the head's carries the API's,
            # scheduler's and monitor's metrics, the region and builder nodes the rest.
            "metricsURL": metrics.get("ray-head"),
            "metricsTargets": metrics,
            "prometheusURL": cfg.prometheus_url if cfg else None,   # scrapes all of them, and the apps
            "rayAddress": cfg.ray_address if cfg else None,
            "regions": [r.name for r in cfg.regions] if cfg else [],
        }
