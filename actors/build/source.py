"""Fetch exactly one commit of a repository into a directory, outside the sandbox."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path


class SourceError(Exception):
    """permanent=True: retrying cannot help (the commit is not there, the source is too big)."""

    def __init__(self, message: str, permanent: bool):
        super().__init__(message)
        self.permanent = permanent


class _Git:
    """git as root with nothing of the machine's configuration: a private empty HOME, no global
    or system config, no hooks and no templates (a planted ~/.gitconfig or template would run
    its hooks as root)."""

    def __init__(self, home: Path, timeout_s: float):
        self.timeout_s = timeout_s
        self.env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "GIT_TERMINAL_PROMPT": "0",
                    "HOME": str(home), "XDG_CONFIG_HOME": str(home), "GIT_CONFIG_GLOBAL": "/dev/null",
                    "GIT_CONFIG_NOSYSTEM": "1", "GIT_ATTR_NOSYSTEM": "1", "LANG": "C"}

    def __call__(self, args: list[str], cwd: Path | None) -> subprocess.CompletedProcess:
        return subprocess.run(["git", "-c", "protocol.file.allow=always", "-c", "core.hooksPath=/dev/null",
                               "-c", "init.templateDir=", *args], cwd=cwd, env=self.env,
                              capture_output=True, text=True, timeout=self.timeout_s)


def fetch_commit(repo_url: str, sha: str, dest: Path, timeout_s: float, max_bytes: int) -> None:
    """Check out `sha` of `repo_url` into `dest` (without .git). Shallow where the server allows.
    The tree's size is checked before anything is checked out."""
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".git-home-", dir=dest.parent) as home:
        _fetch(_Git(Path(home), timeout_s), repo_url, sha, dest, timeout_s, max_bytes)
    shutil.rmtree(dest / ".git", ignore_errors=True)


def tree_bytes(listing: str) -> int:
    """The size of a commit's files from `git ls-tree -r -l` (submodules and links count 0)."""
    total = 0
    for line in listing.splitlines():
        meta = line.split("\t", 1)[0].split()
        if len(meta) == 4 and meta[1] == "blob" and meta[3].isdigit():
            total += int(meta[3])
    return total


def _fetch(_git: _Git, repo_url: str, sha: str, dest: Path, timeout_s: float, max_bytes: int) -> None:
    try:
        _git(["init", "-q", str(dest)], None)
        shallow = _git(["fetch", "-q", "--depth", "1", "--no-tags", repo_url, sha], dest)
        if shallow.returncode != 0:  # servers that refuse a SHA want: fetch the branches instead
            full = _git(["fetch", "-q", "--no-tags", repo_url, "+refs/heads/*:refs/remotes/src/*"], dest)
            if full.returncode != 0:
                raise SourceError(f"git fetch from {repo_url} failed: {full.stderr.strip()[-500:]}",
                                  permanent=False)
        if _git(["cat-file", "-e", f"{sha}^{{commit}}"], dest).returncode != 0:
            raise SourceError(f"commit {sha} not found in {repo_url}", permanent=True)
        tree = _git(["ls-tree", "-r", "-l", "--full-tree", sha], dest)
        if tree.returncode != 0:
            raise SourceError(f"git ls-tree {sha} failed: {tree.stderr.strip()[-500:]}", permanent=False)
        size = tree_bytes(tree.stdout)
        if size > max_bytes:
            raise SourceError(f"source is {size} bytes, over the limit of {max_bytes}", permanent=True)
        co = _git(["checkout", "-q", "--detach", sha], dest)
        if co.returncode != 0:
            raise SourceError(f"git checkout {sha} failed: {co.stderr.strip()[-500:]}", permanent=False)
    except subprocess.TimeoutExpired:
        raise SourceError(f"git timed out after {timeout_s:g}s fetching {repo_url}", permanent=False)
