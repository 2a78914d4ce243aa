"""The API's operations (serve_app/service.py) against a real redis-server, with no Ray and no
Serve: authorization, validation, what each call changes, and that a refused call changes nothing."""
import hashlib
import hmac
import json

import pytest
import redis

from gantry.archive.files import ArchiveReader
from gantry.artifacts.blobstore import FsBlobStore
from gantry import auth
from gantry.serve_app.errors import ApiError
from gantry.serve_app.service import Service
from gantry.settings import Settings
from gantry.state import State
from gantry.topology import Region, StackConfig

SHA = "c" * 40
SECRET = "s" * 32


@pytest.fixture
def svc(redis_url, tmp_path):
    redis.Redis.from_url(redis_url).flushdb()
    (tmp_path / "jwt").write_text(SECRET)
    stack = StackConfig(home=str(tmp_path), redis_url=redis_url, s3_access_key="k", s3_secret_key="s",
                        jwt_secret_file=str(tmp_path / "jwt"),
                        regions=[Region("us-east", "http://127.0.0.1:1", "b"), Region("eu-west", "http://127.0.0.1:2", "b")])
    nudged, archived = [], []
    service = Service(stack, Settings(rate_user_per_s=0, rate_project_per_s=0), State(redis_url),
                      ArchiveReader(FsBlobStore(tmp_path / "archive")), nudge=lambda: nudged.append(1),
                      archive_now=lambda age: archived.append(age) or {"web": 0})
    service.nudged, service.archived = nudged, archived
    admin = service.who("Bearer " + auth.issue(SECRET, "root", admin=True))
    service.op_put_project(admin, "web", {"repoURL": "/src/web", "webhookSecret": "w" * 16})
    return service


def who(svc, user="dana", projects=("web",), **kw):
    return svc.who("Bearer " + auth.issue(SECRET, user, list(projects), **kw))


def error_of(call, *args, **kwargs) -> ApiError:
    with pytest.raises(ApiError) as e:
        call(*args, **kwargs)
    return e.value


def test_tokens_are_checked_and_scoped_to_their_projects(svc):
    assert error_of(svc.who, None).status == 401
    assert error_of(svc.who, "Bearer " + auth.issue("x" * 32, "eve", ["web"])).status == 401   # forged
    eve = who(svc, "eve", projects=("shop",))
    assert error_of(svc.op_get_project, eve, "web").status == 403
    assert svc.op_list_projects(eve) == []
    assert [p["projectName"] for p in svc.op_list_projects(who(svc))] == ["web"]
    assert error_of(svc.op_put_project, who(svc), "shop", {"repoURL": "/src/shop"}).status == 403
    assert error_of(svc.op_get_project, who(svc), "Bad Name").status == 400
    assert error_of(svc.user, "Bearer " + auth.issue_host(SECRET, "h1", "us-east-a")).status == 403


def test_a_build_is_queued_listed_and_cancelled_once(svc):
    dana = who(svc)
    b = svc.op_create_build(dana, "web", {"commitSHA": SHA.upper(), "priority": 7})
    assert b["buildStatus"] == "QUEUED" and b["commitSHA"] == SHA and svc.nudged == [1]
    page = svc.op_list_builds(dana, "web", limit="10")
    assert [x["buildID"] for x in page["builds"]] == [b["buildID"]] and page["nextCursor"] is None
    assert page["builds"][0]["createdAt"].endswith("Z")
    rec = svc.op_cancel_build(dana, "web", b["buildID"])
    assert rec["buildStatus"] == "CANCELLED" and rec["error"] == "cancelled by dana"
    again = error_of(svc.op_cancel_build, dana, "web", b["buildID"])
    assert (again.status, again.detail) == (409, "build is CANCELLED")
    log = svc.op_get_logs(dana, "web", b["buildID"])
    assert log["complete"] and log["data"] == ""
    actions = [e["action"] for e in svc.op_audit(who(svc, "root", admin=True), "web")["entries"]]
    assert actions == ["build.cancel", "build.create", "project.register"]


def test_bad_input_is_refused_and_changes_nothing(svc):
    dana = who(svc)
    for body in ({"commitSHA": "nope"}, {"commitSHA": SHA, "priority": 10}, {"commitSHA": SHA, "extra": 1},
                 {"commitSHA": SHA, "buildDetails": {"env": {"GANTRY_X": "1"}}}):
        assert error_of(svc.op_create_build, dana, "web", body).status == 422
    assert error_of(svc.op_list_builds, dana, "web", limit="0").status == 400
    assert error_of(svc.op_list_builds, dana, "web", nextCursor="../../etc").status == 400
    assert error_of(svc.op_get_build, dana, "web", "x" * 32).status == 400
    assert error_of(svc.op_get_build, dana, "web", "0" * 32).status == 404
    assert svc.op_list_builds(dana, "web")["builds"] == []
    assert svc.state.builds.status_counts()["QUEUED"] == 0


def test_project_build_settings_are_checked_stored_and_shown(svc):
    root = svc.who("Bearer " + auth.issue(SECRET, "root", admin=True))
    settings = {"repoURL": "/src/web", "build": {"command": "make", "output": "out", "fetch": "pip download x",
                                                 "cache": ["~/.ccache", "wheels"], "cpus": 2, "memoryMB": 2048},
                "deploy": {"health": "./ok"}, "egressAllow": ["127.0.0.1:8080 private", "pypi.org", "[::1]:99 private"]}
    project = svc.op_put_project(root, "web", settings)["project"]
    assert project["build"] == {**settings["build"], "cpus": 2.0} and project["deploy"] == {"health": "./ok", "concurrency": "queue",
                                                                                 "auto": False, "duringFreeze": "refuse"}
    assert project["egressAllow"] == settings["egressAllow"]
    for body, error in (({"build": {"output": "../x"}}, "invalid build settings"),
                        ({"build": {"cache": ["/root"]}}, "invalid build settings"),
                        ({"build": {"cpus": 0}}, "invalid build settings"),
                        ({"egressAllow": ["http://evil.example/"]}, "invalid egressAllow"),
                        ({"egressAllow": ["*.example.com"]}, "invalid egressAllow"),
                        ({"egressAllow": ["host:0"]}, "invalid egressAllow"),
                        ({"egressAllow": ["169.254.169.254"]}, "invalid egressAllow")):
        e = error_of(svc.op_put_project, root, "web", {"repoURL": "/src/web", **body})
        assert (e.status, e.error) == (422, error), (body, e.detail)
    assert error_of(svc.op_put_project, root, "web", {"repoURL": "/src/web", "build": {"nope": 1}}).status == 422
    assert svc.op_get_project(root, "web") == project, "a refused change changes nothing"


def test_only_a_built_build_deploys_and_a_rollback_needs_an_earlier_one(svc):
    dana = who(svc)
    b = svc.op_create_build(dana, "web", {"commitSHA": SHA})["buildID"]
    e = error_of(svc.op_create_deployment, dana, "web", {"buildID": b})
    assert e.status == 409 and "QUEUED" in e.detail
    svc.state.builds.claim_next("owner")
    svc.state.replication.publish(b, "owner", {"artifactDigest": "blake3:" + "0" * 64}, "us-east", ["eu-west"],
                                  {"bytesTransferred": 1, "chunksTransferred": 1, "bytesSkipped": 0, "chunksSkipped": 0})
    dep = svc.op_create_deployment(dana, "web", {"buildID": b, "strategy": {"steps": [1.0], "bakeS": 0}})
    assert dep["status"] == "IN_PROGRESS"
    view = svc.op_get_deployment(dana, "web", dep["deploymentID"])
    assert [r["region"] for r in view["regions"]] == ["us-east", "eu-west"]
    assert view["regions"][1]["dcs"][0]["phase"] == "WAITING_FOR_REPLICA"   # eu-west's replica is not in yet
    paused = svc.op_deployment_op(dana, "web", dep["deploymentID"], "PAUSE")
    assert paused["status"] == "PAUSED"
    assert error_of(svc.op_deployment_op, dana, "web", dep["deploymentID"], "PAUSE").status == 409
    assert error_of(svc.op_deployment_op, dana, "web", dep["deploymentID"], "EXPLODE").status == 400
    assert error_of(svc.op_rollback, dana, "web").status == 409   # nothing completed before
    assert svc.op_list_deployments(dana, "web")["deployments"][0]["status"] == "PAUSED"


def test_the_in_cluster_door_runs_only_named_ops_with_their_arguments(svc):
    token = auth.issue(SECRET, "dana", ["web"])
    assert svc.invoke(token, "list_projects", {})["ok"][0]["projectName"] == "web"
    assert svc.invoke(token, "drop_everything", {})["error"]["status"] == 400
    assert svc.invoke(token, "get_build", {"projectName": "web", "bogus": 1})["error"]["error"] == "bad arguments"
    assert svc.invoke("forged", "list_projects", {})["error"]["status"] == 401
    assert svc.invoke(token, "archive", {})["error"]["status"] == 403 and svc.archived == []


def test_a_signed_push_builds_once_and_a_forged_one_nothing(svc):
    body = json.dumps({"ref": "refs/heads/main", "after": SHA, "pusher": {"name": "dana"}}).encode()
    sig = "sha256=" + hmac.new(b"w" * 16, body, hashlib.sha256).hexdigest()
    headers = {"x-hub-signature-256": sig, "x-github-event": "push", "x-github-delivery": "d-1"}
    first, status = svc.github_push("web", headers, body)
    assert status == 202 and first["queued"] and not first["duplicate"]
    again, status = svc.github_push("web", headers, body)
    assert status == 200 and again["buildID"] == first["buildID"] and again["duplicate"]
    forged = error_of(svc.github_push, "web", {**headers, "x-hub-signature-256": "sha256=" + "0" * 64}, body)
    assert forged.status == 401
    assert len(svc.op_list_builds(who(svc), "web")["builds"]) == 1
