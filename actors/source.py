"""Fetch exactly one commit of a repository into a directory, outside the sandbox."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path


class SourceError(Exception):
    """permanent=True: retrying cannot help (the commit is not there, the source is too big)."""

    def __init__(self, message: str, permanent: bool):
        super().__init__(message)
        self.permanent = permanent


def _git(args: list[str], cwd: Path | None, timeout: float) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "GIT_TERMINAL_PROMPT": "0",
           "HOME": str(cwd or "/tmp"), "GIT_CONFIG_NOSYSTEM": "1", "LANG": "C"}
    return subprocess.run(["git", "-c", "protocol.file.allow=always", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def fetch_commit(repo_url: str, sha: str, dest: Path, timeout_s: float, max_bytes: int) -> None:
    """Check out `sha` of `repo_url` into `dest` (without .git). Shallow where the server allows."""
    dest.mkdir(parents=True, exist_ok=True)
    try:
        _git(["init", "-q", str(dest)], None, timeout_s)
        shallow = _git(["fetch", "-q", "--depth", "1", "--no-tags", repo_url, sha], dest, timeout_s)
        if shallow.returncode != 0:  # servers that refuse a SHA want: fetch the branches instead
            full = _git(["fetch", "-q", "--no-tags", repo_url, "+refs/heads/*:refs/remotes/src/*"],
                        dest, timeout_s)
            if full.returncode != 0:
                raise SourceError(f"git fetch from {repo_url} failed: {full.stderr.strip()[-500:]}",
                                  permanent=False)
        if _git(["cat-file", "-e", f"{sha}^{{commit}}"], dest, timeout_s).returncode != 0:
            raise SourceError(f"commit {sha} not found in {repo_url}", permanent=True)
        co = _git(["checkout", "-q", "--detach", sha], dest, timeout_s)
        if co.returncode != 0:
            raise SourceError(f"git checkout {sha} failed: {co.stderr.strip()[-500:]}", permanent=False)
    except subprocess.TimeoutExpired:
        raise SourceError(f"git timed out after {timeout_s:g}s fetching {repo_url}", permanent=False)
    shutil.rmtree(dest / ".git", ignore_errors=True)
    size = sum(p.lstat().st_size for p in dest.rglob("*") if p.is_file() and not p.is_symlink())
    if size > max_bytes:
        raise SourceError(f"source is {size} bytes, over the limit of {max_bytes}", permanent=True)
