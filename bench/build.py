"""A real C project built through gantry twice: cold, then warm with ccache in the build cache.

    .venv/bin/python bench/build.py [--cpus 2] [--json]

The project is Lua 5.1 to 5.5, as the lupa sdist on PyPI ships them (`third-party/lua5*`: 188 .c
files and 140 headers; downloaded once into bench/.cache and checked against PyPI's sha256). A
repository without gantry.toml holds them and a Makefile that builds each version's interpreter;
the project's settings build it with `make -j<cpus> CC="ccache cc"` and keep `~/.ccache` in the
build cache. A one-region stack with one builder of --cpus cpus runs build 1 (no cache yet) and
then build 2, a new commit that changes a README (so the checkout is new and the objects are not).

Reported for each: buildSeconds (the build step in the sandbox), the whole build (queued to
SUCCEEDED) and the cache's bytes. Goal: the warm build step at least 3x faster than the cold one.
With --json the last line is the result.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import tarfile
import tempfile
import urllib.request
from datetime import datetime
from pathlib import Path

from gantry.auth import issue
from gantry.client import HttpClient
from gantry.models import Build
from gantry.statuses import BuildStatus
from gantry.cluster.stack import Stack, free_port
from sample_repo import git

SDIST = "lupa"
VERSION = "2.8"
CACHE = Path(__file__).parent / ".cache"
GOAL = 3.0
MAKEFILE = r"""# Every Lua in this tree: lua5x/<sources> -> bin/lua5x (the interpreter, linked statically).
VERSIONS := lua51 lua52 lua53 lua54 lua55
CC ?= cc
CFLAGS := -O2 -Wall -DLUA_USE_POSIX -DLUA_USE_DLOPEN
NOT_LIB := lua.c luac.c onelua.c ltests.c print.c
src = $(if $(wildcard $(1)/src),$(1)/src,$(1))
lib_sources = $(filter-out $(addprefix $(call src,$(1))/,$(NOT_LIB)),$(wildcard $(call src,$(1))/*.c))
objects = $(patsubst %.c,obj/%.o,$(call lib_sources,$(1)))

all: $(addprefix bin/,$(VERSIONS))

define lua
bin/$(1): $(call objects,$(1)) obj/$(call src,$(1))/lua.o
	@mkdir -p bin
	$$(CC) -o $$@ $$^ -lm -ldl
endef
$(foreach v,$(VERSIONS),$(eval $(call lua,$(v))))

obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -I$(dir $<) -c -o $@ $<
"""


def sdist() -> Path:
    """The lupa sdist, fetched from PyPI once and checked against the digest PyPI gives."""
    path = CACHE / f"{SDIST}-{VERSION}.tar.gz"
    meta = json.load(urllib.request.urlopen(f"https://pypi.org/pypi/{SDIST}/json", timeout=30))
    url = next(u for u in meta["releases"][VERSION] if u["packagetype"] == "sdist")
    if not path.exists() or hashlib.sha256(path.read_bytes()).hexdigest() != url["digests"]["sha256"]:
        CACHE.mkdir(exist_ok=True)
        data = urllib.request.urlopen(url["url"], timeout=300).read()
        if hashlib.sha256(data).hexdigest() != url["digests"]["sha256"]:
            raise SystemExit(f"{url['url']}: sha256 does not match PyPI's")
        path.write_bytes(data)
    return path


def make_repo(repo: Path) -> tuple[str, int]:
    """The Lua trees and the Makefile, committed; returns (SHA, number of files)."""
    repo.mkdir(parents=True)
    with tarfile.open(sdist()) as tar:
        prefix = f"{SDIST}-{VERSION}/third-party/"
        members = [m for m in tar.getmembers() if m.name.startswith(prefix + "lua5") and m.isfile()
                   and not any(part in ("testes", "test", "doc", "manual", "etc") for part in Path(m.name).parts)]
        for m in members:
            m.name = m.name[len(prefix):]
        tar.extractall(repo, members=members, filter="data")
    (repo / "Makefile").write_text(MAKEFILE)
    (repo / "README").write_text("Lua 5.1 to 5.5, for gantry's build benchmark\n")
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "Lua 5.1 to 5.5")
    return git(repo, "rev-parse", "HEAD"), len(members) + 2


def seconds(rec: Build) -> float:
    return (datetime.fromisoformat(rec.finishedAt) - datetime.fromisoformat(rec.createdAt)).total_seconds()


def build(client: HttpClient, project: str, sha: str) -> Build:
    b = client.build(project, sha).buildID
    rec = client.wait_build(project, b, timeout_s=3600, poll_s=0.5)
    if rec.buildStatus != BuildStatus.SUCCEEDED:
        raise SystemExit(f"build {b} {rec.buildStatus.value}: {rec.error}\n{client.logs(project, b).data[-3000:]}")
    return rec


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cpus", type=float, default=2)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gantry-bench-build-"))
    work.chmod(0o711)
    sha1, files = make_repo(work / "lua")
    stack = Stack(work / "home")
    cfg = stack.up(api_port=free_port(), regions=("bench",), builders=1, builder_cpus=a.cpus, hosts_per_dc=0,
                   say=lambda *_: None)
    try:
        client = HttpClient(cfg.api_url, issue(cfg.jwt_secret(), "bench", admin=True), cfg.ca_file)
        jobs = max(1, int(a.cpus))
        # no statistics: they would rewrite files all over the cache on every build
        command = (f"export CCACHE_DIR=$HOME/.ccache CCACHE_NOSTATS=1; make -j{jobs} CC='ccache cc' "
                   "&& mkdir -p dist && cp bin/* dist/")
        client.register("lua", str(work / "lua"), build={
            "command": command, "output": "dist", "cache": ["~/.ccache"], "cpus": a.cpus, "memoryMB": 2048})
        print(f"Lua 5.1-5.5 from the {SDIST} {VERSION} sdist: {files} files; builder: {a.cpus:g} cpus; goal: warm "
              f">= {GOAL:g}x faster than cold")
        cold = build(client, "lua", sha1)
        (work / "lua" / "README").write_text("Lua 5.1 to 5.5, for gantry's build benchmark (second commit)\n")
        git(work / "lua", "commit", "-qam", "touch the README")
        warm = build(client, "lua", git(work / "lua", "rev-parse", "HEAD"))
        speedup = cold.buildSeconds / warm.buildSeconds
        for name, rec in (("cold", cold), ("warm", warm)):
            c = rec.cache
            print(f"{name}: build step {rec.buildSeconds:6.1f} s, whole build {seconds(rec):6.1f} s; cache "
                  f"{'hit' if c.hit else 'miss'}, restored {c.restoredBytes / 1e6:.1f} MB, "
                  f"saved {c.savedBytes / 1e6:.1f} MB")
        print(f"speed-up of the build step: {speedup:.1f}x (goal >= {GOAL:g}x: {'met' if speedup >= GOAL else 'MISSED'}); "
              f"whole build: {seconds(cold) / seconds(warm):.1f}x")
        if a.json:
            print(json.dumps({"files": files, "cpus": a.cpus, "coldBuildSeconds": cold.buildSeconds,
                              "warmBuildSeconds": warm.buildSeconds, "coldTotalSeconds": seconds(cold),
                              "warmTotalSeconds": seconds(warm), "speedup": round(speedup, 2),
                              "coldCache": cold.cache.model_dump(), "warmCache": warm.cache.model_dump()}))
    finally:
        stack.down(say=lambda *_: None)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
