"""Findings 4 and 9: git runs as root on a repository someone else wrote."""
import subprocess
import uuid
from pathlib import Path

import pytest

from gantry.actors.build import source
from helpers import git, make_repo, wait_build


@pytest.fixture
def planted_gitconfig(tmp_path):
    """Any local user can write /tmp/.gitconfig; the review's version set init.templateDir to
    hooks that ran as root when gantry fetched (git ran with HOME=/tmp)."""
    marker = Path(f"/tmp/gantry-hook-ran-{uuid.uuid4().hex}")
    templates = tmp_path / "templates"
    (templates / "hooks").mkdir(parents=True)
    for hook in ("post-checkout", "reference-transaction", "post-index-change"):
        h = templates / "hooks" / hook
        h.write_text(f"#!/bin/sh\nid -u >> {marker}\n")
        h.chmod(0o755)
    cfg = Path("/tmp/.gitconfig")
    saved = cfg.read_bytes() if cfg.exists() else None
    cfg.write_text(f"[init]\n\ttemplateDir = {templates}\n[core]\n\thooksPath = {templates / 'hooks'}\n")
    yield marker
    if saved is None:
        cfg.unlink(missing_ok=True)
    else:
        cfg.write_bytes(saved)
    marker.unlink(missing_ok=True)


def test_a_planted_gitconfig_runs_no_hook_in_a_build(api, new_project, planted_gitconfig):
    project, sha, _ = new_project("mkdir -p dist && echo ok > dist/f")
    b = api.post(f"/projects/{project}/builds", json={"commitSHA": sha}).json()["buildID"]
    rec = wait_build(api, project, b, timeout_s=180)
    assert rec["buildStatus"] == "SUCCEEDED", rec
    assert not planted_gitconfig.exists(), "a hook from /tmp/.gitconfig ran as root"


def test_a_planted_gitconfig_runs_no_hook_on_fetch(tmp_path, planted_gitconfig):
    repo, sha = make_repo(tmp_path / "repo", "true")
    source.fetch_commit(str(repo), sha, tmp_path / "work" / "src", 60, 1 << 30)
    assert (tmp_path / "work" / "src" / "gantry.toml").exists()
    assert not planted_gitconfig.exists()


def test_source_size_is_checked_before_checkout(tmp_path):
    """A 1.5 MB .git was written out as 300 MB before its size was checked."""
    repo, _ = make_repo(tmp_path / "repo", "true")
    with open(repo / "zeros", "wb") as f:
        f.write(bytes(64 << 20))          # compresses to almost nothing in the pack
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "big")
    sha = git(repo, "rev-parse", "HEAD")
    dest = tmp_path / "work" / "src"
    with pytest.raises(source.SourceError, match="over the limit of 16777216") as e:
        source.fetch_commit(str(repo), sha, dest, 60, 16 << 20)
    assert e.value.permanent
    assert not (dest / "zeros").exists()
    used = int(subprocess.run(["du", "-sb", str(dest)], capture_output=True, text=True).stdout.split()[0])
    assert used < 8 << 20, f"{used} bytes written for a source refused by its size"


def test_tree_size_counts_blobs_only():
    listing = ("100644 blob aa    12\ta\n120000 blob bb     3\tlink\n160000 commit cc       -\tsub\n"
               "100755 blob dd  1000\tdir/x y\n")
    assert source.tree_bytes(listing) == 1015
