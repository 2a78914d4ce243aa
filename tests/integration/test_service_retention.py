"""The API's retention operations (serve_app/retention_ops.py) against a real redis-server, no
Ray: a project's policy, pinning, the admin-only garbage collection, and what an expired build
may no longer do."""
from gantry.statuses import BuildStatus as S
from gantry.statuses import DeploymentStatus as D

from test_service import SHA, error_of, svc, who   # noqa: F401 (svc is a fixture)


def succeeded(svc, digest="blake3:" + "a" * 64) -> str:
    build_id = svc.op_create_build(who(svc), "web", {"commitSHA": SHA})["buildID"]
    for to, fields in ((S.BUILDING, {}), (S.DEPLOYING, {"artifactDigest": digest}), (S.SUCCEEDED, {})):
        svc.state.builds.transition(build_id, to, fields=fields)
    return build_id


def test_a_projects_retention_policy_is_set_shown_and_checked(svc):
    root = who(svc, "root", admin=True)
    assert svc.op_get_project(who(svc), "web")["retention"] == {
        "keepLast": 20, "keepDeployedDays": 30, "cacheUnusedDays": 14, "cacheMaxBytes": 20 << 30}
    svc.op_put_project(root, "web", {"repoURL": "/src/web", "retention": {"keepLast": 3}})
    assert svc.op_get_project(who(svc), "web")["retention"]["keepLast"] == 3
    for bad in ({"keepLast": 0}, {"keepForever": True}, {"cacheMaxBytes": -1}):
        e = error_of(svc.op_put_project, root, "web", {"repoURL": "/src/web", "retention": bad})
        assert e.status == 422, bad
    assert svc.op_get_project(who(svc), "web")["retention"]["keepLast"] == 3   # refused: unchanged


def test_pinning_is_for_the_projects_members_audited_and_refused_for_an_expired_build(svc):
    dana, eve = who(svc), who(svc, "eve", projects=("shop",))
    b = succeeded(svc)
    assert error_of(svc.op_pin_build, eve, "web", b).status == 403
    assert error_of(svc.op_pin_build, dana, "web", "f" * 32).status == 404
    assert svc.op_pin_build(dana, "web", b)["pinned"] is True
    assert svc.op_unpin_build(dana, "web", b)["pinned"] is False
    assert svc.state.retention.expire("web", b, "test")[0]
    e = error_of(svc.op_pin_build, dana, "web", b)
    assert (e.status, e.detail) == (409, "build is EXPIRED; build the commit again")
    actions = [x["action"] for x in svc.op_audit(who(svc, "root", admin=True), "web")["entries"]]
    assert actions[:2] == ["build.unpin", "build.pin"]


def test_an_expired_build_neither_deploys_nor_is_rolled_back_to(svc):
    dana = who(svc)
    old, new = succeeded(svc), succeeded(svc, "blake3:" + "b" * 64)
    svc.op_create_deployment(dana, "web", {"buildID": old})
    svc.state.deployments.set_status(svc.state.deployments.desired("web")["deploymentID"], D.COMPLETED)
    svc.op_create_deployment(dana, "web", {"buildID": new})
    assert svc.state.retention.expire("web", old, "keepLast 1") == (True, "")
    e = error_of(svc.op_create_deployment, dana, "web", {"buildID": old})
    assert (e.status, e.error) == (409, "build expired") and "keepLast 1" in e.detail
    e = error_of(svc.op_rollback, dana, "web", {})
    assert (e.status, e.error) == (409, "nothing to roll back to")
    assert svc.op_get_build(dana, "web", old)["expiredReason"] == "keepLast 1"


def test_garbage_collection_is_for_admins_and_its_grace_is_checked(svc):
    ran = []
    svc._gc_now = lambda dry, grace, user: ran.append((dry, grace, user)) or {"sweep": "swept", "projects": {}}
    assert error_of(svc.op_gc, who(svc)).status == 403
    assert error_of(svc.op_gc_report, who(svc)).status == 403
    root = who(svc, "root", admin=True)
    assert error_of(svc.op_gc_report, root).status == 404            # no pass yet
    assert error_of(svc.op_gc, root, graceS=-1).status == 400
    svc.op_gc(root, dryRun=True, graceS=0)
    svc.op_gc(root)
    assert ran == [(True, 0, "root"), (False, None, "root")]
    assert [x["action"] for x in svc.op_audit(root)["entries"]][0] == "gc"   # the real pass only
