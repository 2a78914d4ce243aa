"""Fetch exactly one commit of a repository into a directory, outside the sandbox.

Each builder keeps a bare mirror of every repository it has built, submodules included
(`<builds dir>/.mirrors`), so a build fetches only the objects its mirror lacks, and none when
it holds the commit already.
A mirror is updated under an exclusive lock (two builds of one repository fetch one at a time);
checkouts read it at the same time, which git allows, and it is never garbage-collected, so no
object a checkout reads goes away under it.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import posixpath
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit, urlunsplit

from gantry.artifacts.safepath import DIR_FLAGS, FILE_FLAGS, UnsafePath, open_beneath
from gantry.redact import redact

MAX_GITMODULES = 64 << 10


class SourceError(Exception):
    """permanent=True: retrying cannot help (the commit is not there, the source is too big). The
    message names URLs and quotes git, so credentials in a URL are taken out of it."""

    def __init__(self, message: str, permanent: bool):
        super().__init__(redact(message))
        self.permanent = permanent


class _Git:
    """git as root with nothing of the machine's configuration: a private empty HOME, no global
    or system config, no hooks and no templates (a planted ~/.gitconfig or template would run
    its hooks as root). Of the transports only https and local paths, which gantry checks."""

    def __init__(self, home: Path, timeout_s: float):
        self.timeout_s = timeout_s
        self.env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "GIT_TERMINAL_PROMPT": "0",
                    "HOME": str(home), "XDG_CONFIG_HOME": str(home), "GIT_CONFIG_GLOBAL": "/dev/null",
                    "GIT_CONFIG_NOSYSTEM": "1", "GIT_ATTR_NOSYSTEM": "1", "LANG": "C"}

    def __call__(self, args: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(["git", "-c", "protocol.allow=never", "-c", "protocol.https.allow=always",
                               "-c", "protocol.file.allow=always", "-c", "core.hooksPath=/dev/null",
                               "-c", "init.templateDir=", *args], cwd=cwd, env=self.env,
                              capture_output=True, text=True, timeout=self.timeout_s)

    def ok(self, args: list[str], what: str, cwd: Path | None = None) -> str:
        r = self(args, cwd)
        if r.returncode != 0:
            raise SourceError(f"{what} failed: {r.stderr.strip()[-500:]}", permanent=False)
        return r.stdout


def fetch_commit(repo_url: str, sha: str, dest: Path, timeout_s: float, max_bytes: int,
                 mirrors: Path | None = None, want_submodules: Callable[[Path], bool] = lambda dest: False,
                 log: Callable[[str], None] = lambda line: None,
                 local_repos: Callable[[], set[str]] = set) -> int:
    """Check out `sha` of `repo_url` into `dest` (without .git), through the builder's mirror
    (throwaway ones when `mirrors` is None). The tree's size, with its submodules', is checked
    before anything is checked out. `want_submodules(dest)` is asked once the commit is out (its
    settings may be in it); `local_repos()`, the repositories on the builder's disk a relative
    submodule URL of a local repository may name (the stack's projects'). Returns how many git
    objects came over the network."""
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".git-home-", dir=dest.parent) as home:
        git = _Git(Path(home), timeout_s)
        if mirrors is not None:
            os.makedirs(mirrors, mode=0o700, exist_ok=True)
        where = mirrors if mirrors is not None else Path(home)

        def mirror_of(url: str) -> Path:
            return where / _mirror_name(url)
        try:
            mirror = mirror_of(repo_url)
            fetched = _mirror(git, mirror, repo_url, sha)
            size = _sized(git, mirror, sha, 0, max_bytes, "source")
            git.ok(["clone", "-q", "--shared", "--no-checkout", str(mirror), str(dest)], "git clone from the mirror")
            git.ok(["checkout", "-q", "--detach", sha], f"git checkout {sha}", dest)
            log(f"git: {fetched} new objects fetched" if fetched else "git: the commit was in the builder's mirror")
            if want_submodules(dest):
                fetched += _submodules(git, repo_url, dest, mirror_of, size, max_bytes, log, local_repos)
        except subprocess.TimeoutExpired:
            raise SourceError(f"git timed out after {timeout_s:g}s fetching {repo_url}", permanent=False)
    shutil.rmtree(dest / ".git", ignore_errors=True)
    return fetched


def on_branch(repo_url: str, sha: str, branch: str, mirrors: Path, timeout_s: float) -> bool:
    """Whether `sha` is reachable from `branch` of the repository, as its mirror on this builder
    knows it (refreshed once if not): a build's cache is saved as a branch's only then."""
    mirror = mirrors / _mirror_name(repo_url)
    with tempfile.TemporaryDirectory(prefix=".git-home-", dir=mirrors) as home:
        git = _Git(Path(home), timeout_s)

        def reachable() -> bool:
            return git(["merge-base", "--is-ancestor", sha, f"refs/heads/{branch}"], mirror).returncode == 0
        try:
            if reachable():
                return True
            with _locked(mirror.with_suffix(".lock")):
                git(["fetch", "-q", "--no-tags", "--prune", repo_url, "+refs/heads/*:refs/heads/*"], mirror)
            return reachable()
        except subprocess.TimeoutExpired:
            return False


def _mirror_name(repo_url: str) -> str:
    return hashlib.blake2b(repo_url.encode(), digest_size=16).hexdigest() + ".git"


@contextmanager
def _locked(path: Path):
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _objects(git: _Git, mirror: Path) -> int:
    counts = dict(line.split(": ", 1) for line in git.ok(["count-objects", "-v"], "git count-objects", mirror).splitlines())
    return int(counts.get("count", 0)) + int(counts.get("in-pack", 0))


def _has(git: _Git, mirror: Path, sha: str) -> bool:
    return git(["cat-file", "-e", f"{sha}^{{commit}}"], mirror).returncode == 0


def _mirror(git: _Git, mirror: Path, repo_url: str, sha: str) -> int:
    """Bring `sha` into the mirror of `repo_url`; returns how many objects that fetched."""
    with _locked(mirror.with_suffix(".lock")):
        if not (mirror / "HEAD").exists():
            shutil.rmtree(mirror, ignore_errors=True)   # a mirror whose creation was cut short
            git.ok(["init", "-q", "--bare", str(mirror)], "git init")
            git.ok(["config", "gc.auto", "0"], "git config", mirror)
        fetched = 0
        if not _has(git, mirror, sha):
            before = _objects(git, mirror)
            branches = git(["fetch", "-q", "--no-tags", "--prune", repo_url, "+refs/heads/*:refs/heads/*"], mirror)
            if not _has(git, mirror, sha):   # not on a branch: ask for it by name, where the server allows
                one = git(["fetch", "-q", "--no-tags", repo_url, f"+{sha}:refs/gantry/{sha}"], mirror)
                if branches.returncode != 0 and one.returncode != 0:
                    raise SourceError(f"git fetch from {repo_url} failed: {branches.stderr.strip()[-500:]}",
                                      permanent=False)
            fetched = _objects(git, mirror) - before
        if not _has(git, mirror, sha):
            raise SourceError(f"commit {sha} not found in {repo_url}", permanent=True)
    return fetched


def _sized(git: _Git, mirror: Path, sha: str, so_far: int, max_bytes: int, what: str) -> int:
    """The size of `sha`'s files, refused (before any checkout) if `so_far` plus it is over the limit."""
    size = tree_bytes(git.ok(["ls-tree", "-r", "-l", "--full-tree", sha], f"git ls-tree {sha}", mirror))
    if so_far + size > max_bytes:
        raise SourceError(f"{what} is {so_far + size} bytes, over the limit of {max_bytes}", permanent=True)
    return size


def tree_bytes(listing: str) -> int:
    """The size of a commit's files from `git ls-tree -r -l` (submodules and links count 0)."""
    total = 0
    for line in listing.splitlines():
        meta = line.split("\t", 1)[0].split()
        if len(meta) == 4 and meta[1] == "blob" and meta[3].isdigit():
            total += int(meta[3])
    return total


def submodule_url(repo_url: str, url: str, local_repos: set[str] = frozenset()) -> str:
    """Where a submodule may come from: https, or a path relative to the repository. For a
    repository on the builder's disk, that path must be another of `local_repos` (the stack's
    projects' repositories): a commit may not point gantry at any other repository there."""
    if url.startswith("https://"):
        return url
    if not url.startswith(("./", "../")):
        raise SourceError(f"submodule url {url!r} is not allowed: use https:// or a path relative to the "
                          "repository", permanent=True)
    if repo_url.startswith("https://"):   # as git resolves it: against the repository's own URL
        parts = urlsplit(repo_url)
        return urlunsplit(parts._replace(path=posixpath.normpath(posixpath.join(parts.path.rstrip("/"), url))))
    base = repo_url.removeprefix("file://").rstrip("/")
    resolved = posixpath.normpath(posixpath.join(base, url))
    known = {posixpath.normpath(r.removeprefix("file://")) for r in local_repos if not r.startswith("https://")}
    if resolved not in known:
        raise SourceError(f"submodule url {url!r} names {resolved}, a repository on the builder that is no "
                          "project's: register it as a project, or use https://", permanent=True)
    return resolved


def _gitlink(git: _Git, checkout: Path, path: str) -> str | None:
    """The commit the checked-out tree pins at `path`, if it has a submodule there."""
    for line in git.ok(["ls-tree", "--full-tree", "HEAD", "--", path], "git ls-tree", checkout).splitlines():
        meta, _, name = line.partition("\t")
        mode, kind, sha = meta.split()
        if mode == "160000" and kind == "commit" and name == path.strip("/"):
            return sha
    return None


def _submodules(git: _Git, repo_url: str, dest: Path, mirror_of: Callable[[str], Path], size: int,
                max_bytes: int, log: Callable[[str], None], local_repos: Callable[[], set[str]]) -> int:
    """One level of submodules, each from a checked url through the builder's mirror of it, and
    its size counted with the commit's before it is checked out. .gitmodules is the commit's:
    read beneath the checkout without following links, and parsed by git from a private copy.
    Returns how many objects came over the network."""
    root = os.open(dest, DIR_FLAGS)
    try:
        fd = open_beneath(root, ".gitmodules", FILE_FLAGS)
    except FileNotFoundError:
        return 0
    except UnsafePath as e:
        raise SourceError(f".gitmodules: {e}", permanent=True)
    finally:
        os.close(root)
    with os.fdopen(fd, "rb") as f:
        text = f.read(MAX_GITMODULES + 1)
    if len(text) > MAX_GITMODULES:
        raise SourceError(".gitmodules is too large", permanent=True)
    private = Path(git.env["HOME"]) / "gitmodules"
    private.write_bytes(text)
    # -z: a name or a value may hold spaces and newlines; each entry ends in NUL, its key in a newline
    found = git(["config", "-f", str(private), "-z", "--get-regexp", r"^submodule\..*\.(url|path)$"])
    subs: dict[str, dict[str, str]] = {}
    for entry in found.stdout.split("\0"):
        key, _, value = entry.partition("\n")
        if key:
            name, _, field = key[len("submodule."):].rpartition(".")
            subs.setdefault(name, {})[field] = value
    local = None
    fetched = 0
    for name, sub in sorted(subs.items()):
        if "url" not in sub or "path" not in sub:
            continue
        if local is None and not repo_url.startswith("https://") and not sub["url"].startswith("https://"):
            local = local_repos()
        url = submodule_url(repo_url, sub["url"], local or set())
        pinned = _gitlink(git, dest, sub["path"])
        if pinned is None:
            log(f"git: submodule {sub['path']} is in .gitmodules but the commit pins none there; skipped")
            continue
        mirror = mirror_of(url)
        new = _mirror(git, mirror, url, pinned)
        size += _sized(git, mirror, pinned, size, max_bytes, f"source with submodule {sub['path']}")
        git.ok(["config", f"submodule.{name}.url", url], "git config", dest)
        git.ok(["-c", "protocol.file.allow=always", "submodule", "update", "--init", "--reference", str(mirror),
                "--", sub["path"]], f"submodule {sub['path']}", dest)
        log(f"git: submodule {sub['path']} from {url}: {new} new objects fetched")
        fetched += new
    return fetched
