"""The repository's gantry.toml: how to build it.

    [build]
    command = "make dist"   # run with sh -c in the sandbox, cwd = the checkout
    output = "dist"         # directory, relative to the checkout, that becomes the artifact
    timeout = 600           # seconds; optional

    [deploy]                # optional: run on each host after it switches to the release
    start = "./bin/app --daemon"
    health = "./bin/app --check"
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
class BuildConfig:
    command: str
    output: str
    timeout_s: float
    deploy_start: str = ""
    deploy_health: str = ""


MAX_BYTES = 64 << 10


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


def load(checkout: Path, default_timeout_s: float, max_timeout_s: float) -> BuildConfig:
    text = read_file(checkout)
    if text is None:
        raise ConfigError("gantry.toml not found at the root of the commit")
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"gantry.toml is not valid TOML: {e}")
    build = doc.get("build")
    if not isinstance(build, dict):
        raise ConfigError("gantry.toml has no [build] table")
    command, output = build.get("command"), build.get("output")
    if not isinstance(command, str) or not command.strip():
        raise ConfigError("gantry.toml: [build] command must be a non-empty string")
    if not isinstance(output, str) or not output.strip():
        raise ConfigError("gantry.toml: [build] output must be a non-empty string")
    out = PurePosixPath(output)
    if out.is_absolute() or ".." in out.parts:
        raise ConfigError("gantry.toml: [build] output must be a path inside the repository")
    timeout = build.get("timeout", default_timeout_s)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= max_timeout_s:
        raise ConfigError(f"gantry.toml: [build] timeout must be a number of seconds in (0, {max_timeout_s:g}]")
    deploy = doc.get("deploy", {})
    if not isinstance(deploy, dict):
        raise ConfigError("gantry.toml: [deploy] must be a table")
    hooks = {}
    for hook in ("start", "health"):
        value = deploy.get(hook, "")
        if not isinstance(value, str):
            raise ConfigError(f"gantry.toml: [deploy] {hook} must be a string")
        hooks[hook] = value
    return BuildConfig(command=command, output=str(out), timeout_s=float(timeout),
                       deploy_start=hooks["start"], deploy_health=hooks["health"])
