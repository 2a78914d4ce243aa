"""What a local stack is made of (`<home>/shape.json`): its API port, regions, builders and hosts.

`gantry up` writes it, and every host or builder added or removed since keeps it current.
`gantry up` on an existing home brings back that same stack, whatever stopped it: a crash, a
power cut, `gantry down`. A flag given to `up` overrides what is recorded."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from gantry.artifacts.atomic import write_atomically
from gantry.topology import Region, StackConfig


@dataclass(frozen=True)
class HostSpec:
    host_id: str
    region: str
    dc: str
    projects: tuple[str, ...] = ()
    max_up_mbps: float = 0
    max_down_mbps: float = 0
    peers: bool = True


@dataclass(frozen=True)
class BuilderSpec:
    cpus: float
    memory_mb: int


@dataclass
class Shape:
    api_port: int
    regions: list[str]
    builders: list[BuilderSpec] = field(default_factory=list)
    hosts: list[HostSpec] = field(default_factory=list)
    s3_bwlimit_mbps: float = 0
    plain_http: bool = False   # `--insecure-plain-http`: no TLS anywhere

    def describe(self) -> str:
        return (f"{len(self.regions)} regions ({', '.join(self.regions)}), {len(self.builders)} builders, "
                f"{len(self.hosts)} hosts, API port {self.api_port}" + (", plain HTTP" if self.plain_http else ""))

    @classmethod
    def of(cls, cfg: StackConfig, pids: dict) -> "Shape":
        """A running stack's shape: its config, and what `pids.json` says each process was started as."""
        return cls(api_port=int(cfg.api_url.rsplit(":", 1)[1]), regions=[r.name for r in cfg.regions],
                   builders=[BuilderSpec(**p["builder"]) for _, p in sorted(pids.items()) if "builder" in p],
                   hosts=[HostSpec(**{**p["spec"], "projects": tuple(p["spec"]["projects"])})
                          for _, p in sorted(pids.items()) if "spec" in p],
                   s3_bwlimit_mbps=max((p.get("bwlimit_mbps") or 0 for p in pids.values()), default=0),
                   plain_http=cfg.plain_http)

    def save(self, path: Path) -> None:
        write_atomically(Path(path), json.dumps(asdict(self), indent=2).encode())

    @classmethod
    def load(cls, path: Path) -> "Shape | None":
        """The recorded shape, or None for a home that has none (new, or from before it was kept)."""
        try:
            text = Path(path).read_text()
        except FileNotFoundError:
            return None
        try:
            d = json.loads(text)
            return cls(api_port=int(d["api_port"]), regions=list(d["regions"]),
                       builders=[BuilderSpec(**b) for b in d.get("builders", [])],
                       hosts=[HostSpec(**{**h, "projects": tuple(h.get("projects", ()))}) for h in d.get("hosts", [])],
                       s3_bwlimit_mbps=float(d.get("s3_bwlimit_mbps", 0)), plain_http=bool(d.get("plain_http", False)))
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{path} does not say what the stack was ({e}): give `gantry up` its shape "
                             "(--regions, --builders, --hosts-per-dc, --api-port) or remove the file") from e


DEFAULT_REGIONS = ("us-east", "eu-west", "ap-south")


def to_start(was: Shape | None, api_port: int | None = None, regions: tuple[str, ...] | None = None,
             builders: int | None = None, builder_cpus: float | None = None, builder_memory_mb: int | None = None,
             hosts_per_dc: int | None = None, s3_bwlimit_mbps: float | None = None,
             memory_mb_per_cpu: int = 4096, plain_http: bool | None = None) -> Shape:
    """The stack `gantry up` starts: each part given, else the one recorded (`was`), else the
    default (3 regions, 1 builder of 1 cpu, 4 hosts a datacenter, port 8000). Recorded hosts of
    a region no longer in the stack are left out."""
    regions = tuple(regions or (was.regions if was else DEFAULT_REGIONS))
    if builders is not None or builder_cpus or builder_memory_mb or was is None or not was.builders:
        cpus = builder_cpus or 1.0
        spec = BuilderSpec(cpus, builder_memory_mb or int(cpus * memory_mb_per_cpu))
        builder_specs = [spec] * (1 if builders is None else builders)
    else:
        builder_specs = list(was.builders)
    if hosts_per_dc is None and was is not None:
        hosts = [h for h in was.hosts if h.region in regions]
    else:
        per_dc = 4 if hosts_per_dc is None else hosts_per_dc
        hosts = [HostSpec(f"{dc}-h{i}", r, dc) for r in regions for dc in Region(r, "", "").datacenters for i in range(per_dc)]
    return Shape(api_port=api_port or (was.api_port if was else 8000), regions=list(regions), builders=builder_specs,
                 hosts=hosts, s3_bwlimit_mbps=s3_bwlimit_mbps if s3_bwlimit_mbps is not None
                 else (was.s3_bwlimit_mbps if was else 0),
                 plain_http=plain_http if plain_http is not None else bool(was and was.plain_http))
