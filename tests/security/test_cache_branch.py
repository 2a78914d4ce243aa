"""Issue 22, point 6: a project token must not poison the default branch's build cache. Real
stack, real git repository with a branch the default branch does not contain."""
import uuid

from helpers import git, make_repo, wait_build

# The build notes what the stash held when it started, then leaves its own VERSION in it.
COMMAND = "echo found: $(cat ~/.stash/v 2>/dev/null); mkdir -p ~/.stash out; cat VERSION > ~/.stash/v; cp VERSION out/"


def test_a_build_that_says_it_is_on_main_saves_its_cache_as_main_only_if_main_holds_its_commit(api, tmp_path):
    name = f"c-{uuid.uuid4().hex[:10]}"
    repo, _ = make_repo(tmp_path / name, "true", files={"VERSION": "reviewed\n"})
    (repo / "gantry.toml").unlink()
    git(repo, "commit", "-qam", "settings come from the project")
    r = api.put(f"/projects/{name}", json={"repoURL": str(repo), "build": {
        "command": COMMAND, "output": "out", "cache": ["~/.stash"]}})
    assert r.status_code == 201, r.text
    git(repo, "checkout", "-q", "-b", "unreviewed")
    (repo / "VERSION").write_text("planted\n")
    git(repo, "commit", "-qam", "not reviewed")
    unreviewed = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-q", "main")

    for bad in (5, "../main", "main branch", "-x", "a..b", ["main"]):
        r = api.post(f"/projects/{name}/builds", json={"commitSHA": unreviewed, "buildDetails": {"branch": bad}})
        assert r.status_code == 422 and "branch" in r.text, (bad, r.text)

    b = api.post(f"/projects/{name}/builds", json={"commitSHA": unreviewed,
                                                    "buildDetails": {"branch": "main"}}).json()["buildID"]
    assert wait_build(api, name, b)["buildStatus"] == "SUCCEEDED"
    log = api.get(f"/projects/{name}/builds/{b}/logs").json()["data"]
    assert f"{unreviewed[:12]} is not on main; saved for this commit only" in log, log

    git(repo, "commit", "-q", "--allow-empty", "-m", "reviewed change")
    reviewed = git(repo, "rev-parse", "HEAD")
    b2 = api.post(f"/projects/{name}/builds", json={"commitSHA": reviewed,
                                                     "buildDetails": {"branch": "main"}}).json()["buildID"]
    rec = wait_build(api, name, b2)
    log2 = api.get(f"/projects/{name}/builds/{b2}/logs").json()["data"]
    assert rec["buildStatus"] == "SUCCEEDED" and "found: planted" not in log2, log2
    assert rec["cache"]["hit"] is False, rec["cache"]
    assert "saved for this commit only" not in log2   # main holds it: main's cache now

    b3 = api.post(f"/projects/{name}/builds", json={"commitSHA": reviewed}).json()["buildID"]
    wait_build(api, name, b3)
    assert "found: reviewed" in api.get(f"/projects/{name}/builds/{b3}/logs").json()["data"]
