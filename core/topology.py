"""Where the parts of a running stack are: Redis, the regions' S3 stores, Ray, the API.

`gantry up` writes it to <home>/stack.json; actors and the API read it from the path in
GANTRY_STACK_FILE. A real deployment writes the same file by hand (see ray-cluster.yaml).
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

@dataclass(frozen=True)
class Region:
    name: str
    s3_endpoint: str
    bucket: str
    dcs: tuple[str, ...] = ()   # its datacenters; none named means one, "<region>-a"
    ca_file: str = ""           # the CA its store's certificate is checked against ("": the system's roots)

    @property
    def datacenters(self) -> list[str]:
        return list(self.dcs) or [f"{self.name}-a"]


@dataclass(frozen=True)
class StackConfig:
    home: str
    redis_url: str
    regions: list[Region]
    s3_access_key: str
    s3_secret_key: str
    jwt_secret_file: str
    api_url: str = ""
    ray_address: str = ""
    dashboard_url: str = ""
    builds_dir: str = ""  # build workspaces (root-owned, 0711); the sandbox uid must be able to pass through
    builder_cpus: float = 1.0       # what each local builder node offers builds
    builder_memory_mb: int = 4096
    # TLS: every client trusts ca_file; the API, the coordinators' host endpoints (and, on a local
    # stack, its stores and Redis) serve tls_cert_file. No CA means plain HTTP (`gantry up --insecure-plain-http`).
    ca_file: str = ""
    tls_cert_file: str = ""
    tls_key_file: str = ""
    prometheus_url: str = ""      # the stack's Prometheus (cluster/prometheus.py), or an operator's
    prometheus_targets_dir: str = ""   # where the apps' file-based discovery targets go ("": nowhere)

    @property
    def primary(self) -> Region:
        return self.regions[0]

    def datacenter(self, region: str, dc: str | None = None) -> str:
        """`dc` (default: the region's first), once checked to be one of this stack's."""
        regions = {r.name: r for r in self.regions}
        if region not in regions:
            raise ValueError(f"no region {region!r} in this stack (it has {', '.join(regions)})")
        dc = dc or regions[region].datacenters[0]
        if dc not in regions[region].datacenters:
            raise ValueError(f"no datacenter {dc!r} in {region} (it has {', '.join(regions[region].datacenters)})")
        return dc

    @property
    def plain_http(self) -> bool:
        return not self.ca_file

    def http_verify(self):
        """httpx's `verify=` for this stack's listeners."""
        from gantry.tls import verify
        return verify(self.ca_file)

    def dcs_by_region(self) -> dict[str, list[str]]:
        return {r.name: r.datacenters for r in self.regions}

    def jwt_secret(self) -> str:
        return Path(self.jwt_secret_file).read_text().strip()

    def save(self, path: Path) -> None:
        write_private(path, json.dumps(asdict(self), indent=2).encode())

    @classmethod
    def load(cls, path: str | Path | None = None) -> "StackConfig":
        path = path or os.environ["GANTRY_STACK_FILE"]
        d = json.loads(Path(path).read_text())
        d["regions"] = [Region(**{**r, "dcs": tuple(r.get("dcs", ()))}) for r in d["regions"]]
        return cls(**d)


def write_private(path: Path, data: bytes) -> None:
    """Replace `path` atomically with a file only its owner may read (0600, created under umask
    077, so it is never readable by others, even for a moment). Secrets live in such files."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    old = os.umask(0o077)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    finally:
        os.umask(old)
