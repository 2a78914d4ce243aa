"""Findings 4 and 9: git runs as root on a repository someone else wrote."""
import json
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


def test_submodule_urls_must_be_https_or_name_a_projects_repository():
    projects = {"/srv/git/lib", "file:///srv/git/app/vendor/x"}
    assert source.submodule_url("/srv/git/app", "../lib", projects) == "/srv/git/lib"
    assert source.submodule_url("file:///srv/git/app", "./vendor/x", projects) == "/srv/git/app/vendor/x"
    with pytest.raises(source.SourceError, match="no project's"):   # a sibling, but no project's
        source.submodule_url("/srv/git/app", "../other-team", projects)
    assert source.submodule_url("https://example.com/a/app.git", "../lib.git") == "https://example.com/a/lib.git"
    assert source.submodule_url("/srv/git/app", "https://example.com/x.git") == "https://example.com/x.git"
    for url in ("/etc", "file:///srv/other", "ext::sh -c touch% /tmp/x", "git@host:x", "../../../root/.ssh",
                "ssh://example.com/x"):
        with pytest.raises(source.SourceError) as e:
            source.submodule_url("/srv/git/app", url, projects)
        assert e.value.permanent


def test_submodules_come_with_the_commit_and_a_url_pointing_elsewhere_is_refused(tmp_path):
    lib, _ = make_repo(tmp_path / "lib", "true", files={"lib.c": "int lib;\n"})
    app, _ = make_repo(tmp_path / "app", "true")
    git(app, "-c", "protocol.file.allow=always", "submodule", "add", "-q", "../lib", "vendor/lib")
    git(app, "commit", "-qm", "add lib")
    sha = git(app, "rev-parse", "HEAD")
    dest = tmp_path / "work" / "src"
    with pytest.raises(source.SourceError, match="no project's"):   # a repository beside it, but no project's
        source.fetch_commit(str(app), sha, tmp_path / "work0" / "src", 60, 1 << 30, want_submodules=lambda tree: True)
    source.fetch_commit(str(app), sha, dest, 60, 1 << 30, want_submodules=lambda tree: True,
                        local_repos=lambda: {str(lib)})
    assert (dest / "vendor" / "lib" / "lib.c").read_text() == "int lib;\n" and not (dest / ".git").exists()
    secret, _ = make_repo(tmp_path / "elsewhere" / "secret", "true", files={"key": "s3cr3t\n"})
    (app / ".gitmodules").write_text(f'[submodule "x"]\n\tpath = x\n\turl = {secret}\n')
    git(app, "add", "-A")
    git(app, "commit", "-qm", "point elsewhere")
    with pytest.raises(source.SourceError, match="is not allowed") as e:
        source.fetch_commit(str(app), git(app, "rev-parse", "HEAD"), tmp_path / "work2" / "src", 60, 1 << 30,
                            want_submodules=lambda tree: True)
    assert e.value.permanent


def lib_and_app(tmp_path, lib_files, name="vendor/lib"):
    lib, _ = make_repo(tmp_path / "lib", "true", files=lib_files)
    app, _ = make_repo(tmp_path / "app", "true")
    git(app, "-c", "protocol.file.allow=always", "submodule", "add", "-q", "--name", name, "../lib", "vendor/lib")
    git(app, "commit", "-qm", "add lib")
    return app, git(app, "rev-parse", "HEAD")


def projects(tmp_path):
    return lambda: {str(tmp_path / "lib"), str(tmp_path / "app")}


def test_a_submodule_counts_against_the_source_limit_before_it_is_checked_out(tmp_path):
    app, sha = lib_and_app(tmp_path, {"zeros": "\0" * (20 << 20)})
    dest = tmp_path / "work" / "src"
    with pytest.raises(source.SourceError, match="source with submodule vendor/lib is .* over the limit") as e:
        source.fetch_commit(str(app), sha, dest, 60, 16 << 20, want_submodules=lambda tree: True,
                            local_repos=projects(tmp_path))
    assert e.value.permanent
    assert not (dest / "vendor" / "lib" / "zeros").exists()


def test_a_submodule_whose_name_has_spaces_is_sized_too(tmp_path):
    """`--get-regexp` output was split at the first space: such a submodule was never sized."""
    app, sha = lib_and_app(tmp_path, {"zeros": "\0" * (20 << 20)}, name="a name with spaces")
    dest = tmp_path / "work" / "src"
    with pytest.raises(source.SourceError, match="over the limit"):
        source.fetch_commit(str(app), sha, dest, 60, 16 << 20, want_submodules=lambda tree: True,
                            local_repos=projects(tmp_path))
    assert not (dest / "vendor" / "lib" / "zeros").exists()


def test_submodules_come_through_the_builders_mirror(tmp_path):
    app, sha = lib_and_app(tmp_path, {"lib.c": "int lib;\n"})
    mirrors, lines = tmp_path / "mirrors", []
    for run in ("first", "second"):
        source.fetch_commit(str(app), sha, tmp_path / run / "src", 60, 1 << 30, mirrors=mirrors,
                            want_submodules=lambda tree: True, log=lines.append, local_repos=projects(tmp_path))
        assert (tmp_path / run / "src" / "vendor" / "lib" / "lib.c").read_text() == "int lib;\n"
    subs = [line for line in lines if line.startswith("git: submodule vendor/lib")]
    assert len(subs) == 2 and not subs[0].endswith(": 0 new objects fetched"), subs
    assert subs[1].endswith(": 0 new objects fetched"), subs
    assert len(list(mirrors.glob("*.git"))) == 2   # the app's and the lib's


def test_credentials_in_a_repo_url_reach_no_log_error_or_view(api):
    """A token written into repoURL came back in the build's log and error, read by every member."""
    name = f"cred-{uuid.uuid4().hex[:8]}"
    url = "https://deploy:TOKEN-5ecr3t@127.0.0.1:1/acme/app.git"   # nothing listens: git fails, naming the URL
    assert api.put(f"/projects/{name}", json={"repoURL": url}).status_code == 201
    assert "TOKEN-5ecr3t" not in api.get(f"/projects/{name}").text
    assert api.get(f"/projects/{name}").json()["repoURL"] == "https://***@127.0.0.1:1/acme/app.git"
    b = api.post(f"/projects/{name}/builds", json={"commitSHA": "a" * 40}).json()["buildID"]
    rec = wait_build(api, name, b, timeout_s=120)
    log = api.get(f"/projects/{name}/builds/{b}/logs").json()["data"]
    assert rec["buildStatus"] in ("DEAD", "FAILED") and "127.0.0.1:1" in (rec.get("error") or "") + log, (rec, log)
    assert "TOKEN-5ecr3t" not in json.dumps(rec) + log, (rec, log)
