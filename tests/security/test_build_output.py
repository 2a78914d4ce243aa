"""Finding 1, 5, 8 and 15 of the adversarial review: a build's output and gantry.toml are
written by build code, and root reads them. On the real stack, with real sandboxes."""
from helpers import wait_build


def build(api, new_project, command, **kw):
    project, sha, _ = new_project(command, **kw)
    b = api.post(f"/projects/{project}/builds", json={"commitSHA": sha}).json()["buildID"]
    return wait_build(api, project, b, timeout_s=180)


def test_output_through_a_link_to_the_host_root_is_refused(api, stack, new_project):
    """The review's critical finding: `ln -s / hostroot` and output = hostroot/<stack home>
    shipped jwt.secret in the artifact."""
    output = "hostroot" + str(stack.home)
    rec = build(api, new_project, "ln -s / hostroot", output=output)
    assert rec["buildStatus"] == "FAILED", rec
    assert f"output '{output}' leaves the checkout" in rec["error"]
    assert not rec.get("artifact")


def test_output_inside_a_linked_directory_is_refused(api, new_project):
    rec = build(api, new_project, "mkdir -p real/dist && echo x > real/dist/f && ln -s real alias",
                output="alias/dist")
    assert rec["buildStatus"] == "FAILED" and "leaves the checkout" in rec["error"]


def test_a_chain_of_relative_links_out_of_the_output_fails_the_build(api, new_project):
    """Ten relative links, each harmless alone, that together resolve outside the release."""
    rec = build(api, new_project, "mkdir -p dist/a && cd dist && ln -s . l0 && "
                "for i in 1 2 3 4 5 6 7 8 9; do ln -s l$((i-1))/. l$i; done && ln -s l9/../../../../.. escape")
    assert rec["buildStatus"] == "FAILED" and "another symlink" in rec["error"], rec


def test_sparse_files_count_at_their_apparent_size(api, new_project):
    """A 12 KiB workspace of sparse files would have been 1 GiB on every host."""
    rec = build(api, new_project, "mkdir -p dist && truncate -s 1G dist/a && truncate -s 1G dist/b")
    assert rec["buildStatus"] == "FAILED", rec
    assert "artifact too large" in rec["error"] and "GANTRY_MAX_ARTIFACT_BYTES=268435456" in rec["error"]


def test_too_many_files_fail_the_build(api, new_project):
    rec = build(api, new_project, "mkdir -p dist && cd dist && seq 1 5001 | xargs touch")
    assert rec["buildStatus"] == "FAILED" and "GANTRY_MAX_ARTIFACT_FILES=5000" in rec["error"], rec


def test_gantry_toml_linked_to_a_host_file_is_not_read(api, stack, new_project, tmp_path):
    """Root parsed a symlinked gantry.toml outside the sandbox, and the parse error leaked the
    length of the host file's first line."""
    from helpers import git
    project, _, repo = new_project("true")
    (repo / "gantry.toml").unlink()
    (repo / "gantry.toml").symlink_to(stack.home / "jwt.secret")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "link")
    sha = git(repo, "rev-parse", "HEAD")
    b = api.post(f"/projects/{project}/builds", json={"commitSHA": sha}).json()["buildID"]
    rec = wait_build(api, project, b)
    assert rec["buildStatus"] == "FAILED" and "gantry.toml is a symlink" in rec["error"], rec
    assert "line" not in rec["error"] and "column" not in rec["error"]
