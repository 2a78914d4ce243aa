"""How to build a commit: its gantry.toml, the project's build settings, or both.

    [build]
    command = "make dist"      # run with sh -c in the sandbox, cwd = the checkout
    output = "dist"            # directory, relative to the checkout, that becomes the artifact
    timeout = 600              # seconds; optional
    fetch = "pip download -d wheels -r requirements.txt"   # optional: runs first, with network
                               # only to the project's egressAllow hosts, through gantry's proxy
    cache = ["wheels", "~/.ccache"]   # optional: kept between builds (checkout-relative or under ~)
    cpus = 2                   # optional: reserved on a builder and enforced by cgroups
    memoryMB = 4096            # optional: likewise
    submodules = true          # optional

    [deploy]                   # optional: run on each host after it switches to the release
    start = "./bin/app --daemon"
    health = "./bin/app --check"

A project's settings (`PUT /projects/{p}` with `build` and `deploy`) hold the same keys and are
used where the commit has no gantry.toml; where it has one, the file wins field by field. The same
checks run on both (`check_build`, `check_deploy`). Which network a fetch may reach is the
project's alone (`egressAllow`): a commit cannot widen it.
"""
from __future__ import annotations

import os
import stat
import tomllib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from gantry.artifacts.safepath import DIR_FLAGS, FILE_FLAGS, UnsafePath, open_beneath


class ConfigError(Exception):
    pass


@dataclass(frozen=True)
class Bounds:
    """What the builders allow: from Settings."""
    default_timeout_s: float
    max_timeout_s: float
    max_cpus: float = 64.0
    max_memory_mb: int = 256 * 1024

    @classmethod
    def of(cls, s) -> "Bounds":
        return cls(s.build_timeout_s, s.build_timeout_max_s, s.build_cpus_max, s.build_memory_max_mb)


@dataclass(frozen=True)
class BuildConfig:
    command: str
    output: str
    timeout_s: float
    deploy_start: str = ""
    deploy_health: str = ""
    fetch: str = ""
    cache: tuple[str, ...] = ()
    cpus: float | None = None          # None: the builder's default
    memory_mb: int | None = None
    submodules: bool = False
    source: str = "gantry.toml"        # configSource: "gantry.toml", "project" or "both"


MAX_BYTES = 64 << 10
MAX_CACHE_PATHS = 16
BUILD_KEYS = ("command", "output", "timeout", "fetch", "cache", "cpus", "memoryMB", "submodules")
DEPLOY_KEYS = ("start", "health")
HOME = "/home/build"                   # the build's $HOME in the sandbox (kept between its steps)


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _inside(path: str) -> bool:
    p = PurePosixPath(path)
    return bool(path.strip()) and not p.is_absolute() and ".." not in p.parts and p.parts not in ((), (".",))


def check_build(table: dict, where: str, bounds: Bounds) -> dict:
    """The [build] keys that `table` sets, checked; ConfigError saying which one is wrong."""
    unknown = sorted(set(table) - set(BUILD_KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown build keys {unknown} (known: {', '.join(BUILD_KEYS)})")
    out = {}
    for key in ("command", "output", "fetch"):
        if key in table:
            v = table[key]
            if not isinstance(v, str) or (key != "fetch" and not v.strip()):
                raise ConfigError(f"{where}: build {key} must be a non-empty string")
            out[key] = v
    if "output" in out:
        if not _inside(out["output"]):
            raise ConfigError(f"{where}: build output must be a path inside the repository")
        out["output"] = str(PurePosixPath(out["output"]))
    for key, most, unit in (("timeout", bounds.max_timeout_s, " of seconds"), ("cpus", bounds.max_cpus, "")):
        if key in table:
            v = table[key]
            if not _number(v) or not 0 < v <= most:
                raise ConfigError(f"{where}: build {key} must be a number{unit} in (0, {most:g}]")
            out[key] = float(v)
    if "cache" in table:
        v = table["cache"]
        if not isinstance(v, list) or len(v) > MAX_CACHE_PATHS or not all(isinstance(p, str) for p in v):
            raise ConfigError(f"{where}: build cache must be a list of at most {MAX_CACHE_PATHS} paths")
        for p in v:
            rel = p[2:] if p.startswith("~/") else p
            if not _inside(rel):
                raise ConfigError(f"{where}: cache path {p!r} must be inside the checkout, or under ~/")
        out["cache"] = list(dict.fromkeys(v))
    if "memoryMB" in table:
        v = table["memoryMB"]
        if not isinstance(v, int) or isinstance(v, bool) or not 64 <= v <= bounds.max_memory_mb:
            raise ConfigError(f"{where}: build memoryMB must be a whole number in [64, {bounds.max_memory_mb}]")
        out["memoryMB"] = v
    if "submodules" in table:
        if not isinstance(table["submodules"], bool):
            raise ConfigError(f"{where}: build submodules must be true or false")
        out["submodules"] = table["submodules"]
    return out


def check_deploy(table: dict, where: str) -> dict:
    unknown = sorted(set(table) - set(DEPLOY_KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown deploy keys {unknown} (known: {', '.join(DEPLOY_KEYS)})")
    for hook, value in table.items():
        if not isinstance(value, str):
            raise ConfigError(f"{where}: deploy {hook} must be a string")
    return dict(table)


def read_file(checkout: Path) -> str | None:
    """gantry.toml's text, or None if the commit has none. Read as root from a tree the build
    controls: opened beneath the checkout with O_NOFOLLOW, a regular file of bounded size."""
    root = os.open(checkout, DIR_FLAGS)
    try:
        fd = open_beneath(root, "gantry.toml", FILE_FLAGS)
    except FileNotFoundError:
        return None
    except UnsafePath:
        raise ConfigError("gantry.toml is a symlink; it must be a regular file in the commit")
    finally:
        os.close(root)
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ConfigError("gantry.toml must be a regular file")
        data = f.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise ConfigError(f"gantry.toml is larger than {MAX_BYTES} bytes")
    try:
        return data.decode()
    except UnicodeDecodeError:
        raise ConfigError("gantry.toml is not UTF-8 text")


def parse_file(text: str, bounds: Bounds) -> tuple[dict, dict]:
    """gantry.toml's (build, deploy) keys, checked."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"gantry.toml is not valid TOML: {e}")
    build, deploy = doc.get("build", {}), doc.get("deploy", {})
    if not isinstance(build, dict) or not isinstance(deploy, dict):
        raise ConfigError("gantry.toml: [build] and [deploy] must be tables")
    return check_build(build, "gantry.toml", bounds), check_deploy(deploy, "gantry.toml")


def resolve(file: tuple[dict, dict] | None, project: tuple[dict, dict], bounds: Bounds) -> BuildConfig:
    """The commit's settings over the project's, field by field."""
    (fb, fd), (pb, pd) = file or ({}, {}), project
    build, deploy = {**pb, **fb}, {**pd, **fd}
    used_project = any(k not in fb for k in pb) or any(k not in fd for k in pd)
    if file is None and not pb:
        raise ConfigError("no build settings: the commit has no gantry.toml and the project sets no `build` "
                          "(PUT /projects/{name} with build: {command, output})")
    source = "project" if file is None else "both" if used_project else "gantry.toml"
    where = {"project": "the project's build settings", "both": "gantry.toml and the project's build settings",
             "gantry.toml": "gantry.toml"}[source]
    for key in ("command", "output"):
        if key not in build:
            raise ConfigError(f"{where}: build {key} is missing")
    return BuildConfig(command=build["command"], output=build["output"],
                       timeout_s=build.get("timeout", bounds.default_timeout_s),
                       deploy_start=deploy.get("start", ""), deploy_health=deploy.get("health", ""),
                       fetch=build.get("fetch", ""), cache=tuple(build.get("cache", ())),
                       cpus=build.get("cpus"), memory_mb=build.get("memoryMB"),
                       submodules=build.get("submodules", False), source=source)


def load(checkout: Path, bounds: Bounds, project: tuple[dict, dict] = ({}, {})) -> BuildConfig:
    text = read_file(checkout)
    return resolve(None if text is None else parse_file(text, bounds), project, bounds)
