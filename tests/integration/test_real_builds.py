"""What real repositories need (issue 15), on the real stack: settings without a gantry.toml, a
fetch step whose network is gantry's proxy and nothing else, build caches, the git mirror."""
import subprocess
import uuid
from datetime import datetime

import pytest

from helpers import HTTPStub, commit, git, wait_build, wait_until

FETCH = "python3 -c \"import urllib.request as u; open('{out}', 'wb').write(u.urlopen('{url}', timeout=10).read())\""


@pytest.fixture(scope="module")
def package_index():
    """A local HTTP server standing in for a package index, on 127.0.0.1: an address inside, so
    its egressAllow entry is marked private."""
    server = HTTPStub(lambda request: f"package at {request.path}\n".encode())
    yield server.address
    server.stop()


def plain_repo(path, files: dict[str, str]):
    """A repository with no gantry.toml."""
    path.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    for name, text in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    git(path, "add", "-A")
    git(path, "commit", "-qm", "first")
    return git(path, "rev-parse", "HEAD")


@pytest.fixture
def project(api, tmp_path):
    """A project over a repository without gantry.toml, with the given settings."""
    def make(build: dict, files: dict[str, str] | None = None, **more):
        name = f"r-{uuid.uuid4().hex[:10]}"
        repo = tmp_path / name
        sha = plain_repo(repo, files or {"README": "hello\n"})
        r = api.put(f"/projects/{name}", json={"repoURL": str(repo), "build": build, **more})
        assert r.status_code == 201, r.text
        return name, sha, repo
    return make


def build(api, project: str, sha: str, timeout_s: float = 180) -> tuple[dict, str]:
    b = api.post(f"/projects/{project}/builds", json={"commitSHA": sha}).json()["buildID"]
    rec = wait_build(api, project, b, timeout_s=timeout_s)
    return rec, api.get(f"/projects/{project}/builds/{b}/logs").json()["data"]


def test_a_repository_without_gantry_toml_builds_from_the_project_settings(api, project):
    name, sha, _ = project({"command": "mkdir -p out && cp README out/", "output": "out"},
                           deploy={"health": "test -f README"})
    rec, log = build(api, name, sha)
    assert rec["buildStatus"] == "SUCCEEDED", (rec, log)
    assert rec["configSource"] == "project" and rec["fetchSeconds"] is None and rec["buildSeconds"] > 0
    assert "settings from project" in log


def test_the_fetch_step_reaches_an_allowed_host_through_the_proxy_and_the_build_step_is_offline(
        api, project, package_index):
    url = f"http://{package_index}/simple/dep-1.0.tar.gz"
    offline = ("python3 -c \"import urllib.request as u\ntry:\n    u.urlopen('" + url + "', timeout=5)\n"
               "    print('BUILD' + '-ONLINE')\nexcept Exception as e:\n    print('build step offline:', e)\"")
    name, sha, _ = project({"fetch": FETCH.format(out="dep.tgz", url=url),
                            "command": f"{offline}; mkdir -p out && cp dep.tgz out/", "output": "out"},
                           egressAllow=[package_index + " private"])
    rec, log = build(api, name, sha)
    assert rec["buildStatus"] == "SUCCEEDED", (rec, log)
    assert f"egress proxy: GET http://{package_index}" in log and "-> 127.0.0.1" in log
    assert "build step offline:" in log and "BUILD-ONLINE" not in log
    assert rec["fetchSeconds"] > 0 and rec["buildSeconds"] > 0
    assert log.index("fetch step: running `") < log.index("build step: running `")


def test_a_fetch_from_a_host_not_allowed_fails_with_the_proxys_refusal(api, project, package_index):
    port = package_index.rsplit(":", 1)[1]
    name, sha, _ = project({"fetch": FETCH.format(out="x", url=f"http://127.0.0.3:{port}/evil"),
                            "command": "mkdir out", "output": "out"}, egressAllow=[package_index + " private"])
    rec, log = build(api, name, sha)
    assert rec["buildStatus"] == "FAILED" and rec["error"].startswith("fetch step:"), rec
    assert f"127.0.0.3:{port} is not in the project's egressAllow (allowed: {package_index} private)" in log
    assert "403" in log


def test_a_direct_connection_from_the_fetch_step_fails(api, project, package_index):
    host, port = package_index.rsplit(":", 1)
    direct = ("env -u HTTP_PROXY -u http_proxy -u HTTPS_PROXY -u https_proxy python3 -c \"import socket\n"
              f"socket.create_connection(('{host}', {port}), timeout=5)\nprint('DIRECT' + '-CONNECTED')\"")
    name, sha, _ = project({"fetch": direct, "command": "mkdir out", "output": "out"}, egressAllow=[package_index + " private"])
    rec, log = build(api, name, sha)
    assert rec["buildStatus"] == "FAILED" and "DIRECT-CONNECTED" not in log
    assert "ConnectionRefusedError" in log or "Network is unreachable" in log, log


def test_the_cache_a_build_saves_is_restored_by_the_next_and_a_failed_build_saves_none(api, project):
    # The fetch step fills ~/.stash once; the build step says what it found, notes its VERSION
    # in the stash, and fails when FAIL is not empty.
    fetch = ("mkdir -p ~/.stash; [ -f ~/.stash/stamp ] || "
             "(head -c 2000000 /dev/urandom > ~/.stash/blob; cat VERSION > ~/.stash/stamp)")
    command = ("echo found: $(cat ~/.stash/stamp) last: $(cat ~/.stash/last 2>/dev/null); "
               "cat VERSION > ~/.stash/last; test ! -s FAIL && mkdir -p out && cp ~/.stash/stamp out/")
    name, sha1, repo = project({"fetch": fetch, "command": command, "output": "out", "cache": ["~/.stash"]},
                               files={"VERSION": "one\n"})
    first, log1 = build(api, name, sha1)
    assert first["buildStatus"] == "SUCCEEDED", (first, log1)
    assert first["cache"]["hit"] is False and first["cache"]["savedBytes"] > 2000000, first["cache"]

    second, log2 = build(api, name, commit(repo, {"VERSION": "two\n"}))
    assert second["buildStatus"] == "SUCCEEDED", (second, log2)
    assert "found: one last: one" in log2, log2
    cache = second["cache"]
    assert cache["hit"] is True and cache["restoredBytes"] > 2000000 and cache["branch"] == "main", cache
    assert cache["savedBytes"] < cache["restoredBytes"] / 2, "a slightly changed cache moves only its new chunks"

    failed, log3 = build(api, name, commit(repo, {"VERSION": "three\n", "FAIL": "yes"}))
    assert failed["buildStatus"] == "FAILED" and "found: one last: two" in log3, log3
    assert failed["cache"]["savedBytes"] == 0

    fourth, log4 = build(api, name, commit(repo, {"VERSION": "four\n", "FAIL": ""}))
    assert fourth["buildStatus"] == "SUCCEEDED", (fourth, log4)
    assert "found: one last: two" in log4, "the failed build's cache was saved: " + log4


def test_a_second_build_of_a_repository_fetches_only_new_git_objects(api, project):
    files = {f"src/f{i}.c": f"int f{i}(void) {{ return {i}; }}\n" for i in range(40)}
    name, sha1, repo = project({"command": "mkdir -p out && cp -r src out/", "output": "out"}, files=files)
    first, log1 = build(api, name, sha1)
    assert first["buildStatus"] == "SUCCEEDED", (first, log1)
    fetched_first = int(log1.split("git: ", 1)[1].split(" new objects")[0])
    assert fetched_first >= 42   # a commit, trees and 40 blobs
    second, log2 = build(api, name, commit(repo, {"src/f1.c": "int f1(void) { return 100; }\n"}))
    assert second["buildStatus"] == "SUCCEEDED", (second, log2)
    fetched_second = int(log2.split("git: ", 1)[1].split(" new objects")[0])
    assert fetched_second <= 4, log2   # the commit, two trees, one blob
    again, log3 = build(api, name, sha1)
    assert "git: the commit was in the builder's mirror" in log3 or "git: 0" in log3


@pytest.fixture(scope="module")
def two_cpu_builder(stack):
    """A builder offering 2 cpus and 1 GB, beside the stack's 1-cpu, 256 MB ones; stopped after the
    module (with nothing running on it), so later tests see the stack's own capacity."""
    name = stack.add_builder(90, cpus=2, memory_mb=1024)
    ray = stack.connect()

    def alive():
        return [n["NodeID"] for n in ray.nodes() if n["Alive"] and n["Resources"].get(f"gantry-node:{name}")]
    wait_until(alive, 90, f"{name} to join")
    yield alive()[0]
    stack.remove(name)
    wait_until(lambda: not alive(), 60, f"{name} to leave")


def test_two_one_cpu_builds_run_at_once_on_a_two_cpu_builder(api, project, two_cpu_builder):
    # 300 MB each: more than a 1-cpu builder of this stack offers, so both can only go to the 2-cpu one
    name, sha, _ = project({"command": "sleep 4; mkdir out; echo ok > out/ok", "output": "out",
                            "cpus": 1, "memoryMB": 300})
    ids = [api.post(f"/projects/{name}/builds", json={"commitSHA": sha}).json()["buildID"] for _ in range(2)]
    recs = [wait_build(api, name, b, timeout_s=180) for b in ids]
    assert [r["buildStatus"] for r in recs] == ["SUCCEEDED"] * 2, recs
    assert all(r["resources"] == {"cpus": 1.0, "memoryMB": 300} for r in recs), recs
    stored = [api.get(f"/projects/{name}/builds/{b}/logs").json()["data"] for b in ids]
    assert all("settings from project; 1 cpus, 300 MB" in log for log in stored)
    t = [(datetime.fromisoformat(r["startedAt"]), datetime.fromisoformat(r["finishedAt"])) for r in recs]
    assert t[0][0] < t[1][1] and t[1][0] < t[0][1], f"the two builds did not overlap: {t}"
    assert all(f" on {two_cpu_builder}:" in log for log in stored), "both ran on the 2-cpu builder"


def test_a_build_bigger_than_every_builder_says_why_it_waits_and_can_be_cancelled(api, project):
    name, sha, _ = project({"command": "true", "output": "out", "cpus": 64})
    b = api.post(f"/projects/{name}/builds", json={"commitSHA": sha}).json()["buildID"]

    def log():
        return api.get(f"/projects/{name}/builds/{b}/logs").json()["data"]
    wait_until(lambda: "waiting up to" in log(), 30, "the scheduler to say why the build waits")
    assert "for a builder with 64 cpus" in log() and "the largest builder has" in log()
    assert api.get(f"/projects/{name}/builds/{b}").json()["buildStatus"] == "QUEUED"
    r = api.patch(f"/projects/{name}/builds", params={"op": "CANCEL"}, json={"buildID": b})
    assert r.status_code == 200 and r.json()["buildStatus"] == "CANCELLED"


def test_submodules_are_checked_out_when_the_settings_ask(api, project, tmp_path):
    lib = tmp_path / "lib"
    plain_repo(lib, {"lib.c": "int lib;\n"})
    assert api.put(f"/projects/lib-{uuid.uuid4().hex[:8]}", json={"repoURL": str(lib)}).status_code == 201
    name, _, repo = project({"command": "mkdir out && cp vendor/lib/lib.c out/", "output": "out", "submodules": True})
    git(repo, "-c", "protocol.file.allow=always", "submodule", "add", "-q", "../lib", "vendor/lib")
    git(repo, "commit", "-qm", "add lib")
    rec, log = build(api, name, git(repo, "rev-parse", "HEAD"))
    assert rec["buildStatus"] == "SUCCEEDED", (rec, log)
    assert "git: submodule vendor/lib from" in log
