"""The gateway on the live stack: GitHub webhooks, coalescing, rate limits, the audit log,
ETag/304, OpenAPI, Prometheus metrics and the Parquet archive."""
import hashlib
import hmac
import json
import time
import uuid

import httpx
import pytest
from helpers import commit, wait_build, wait_until

from conftest import client
from gantry.auth import issue

SECRET = "whsec-" + "x" * 20


def push_payload(sha: str, branch: str = "main", before: str = "0" * 40) -> dict:
    """The fields of GitHub's documented `push` event payload that matter, in its shape."""
    return {
        "ref": f"refs/heads/{branch}", "before": before, "after": sha, "created": False, "deleted": False,
        "forced": False, "base_ref": None, "compare": f"https://github.com/acme/shop/compare/{before[:12]}...{sha[:12]}",
        "commits": [{"id": sha, "tree_id": "f" * 40, "distinct": True, "message": "Merge pull request #7",
                     "timestamp": "2026-11-26T12:00:00Z", "url": f"https://github.com/acme/shop/commit/{sha}",
                     "author": {"name": "Dana", "email": "dana@example.com", "username": "dana"},
                     "committer": {"name": "GitHub", "email": "noreply@github.com", "username": "web-flow"},
                     "added": [], "removed": [], "modified": ["gantry.toml"]}],
        "head_commit": {"id": sha, "message": "Merge pull request #7"},
        "repository": {"id": 1296269, "name": "shop", "full_name": "acme/shop", "default_branch": "main",
                       "clone_url": "https://github.com/acme/shop.git"},
        "pusher": {"name": "dana", "email": "dana@example.com"},
        "sender": {"login": "dana", "id": 1, "type": "User"},
    }


def deliver(stack, project: str, body: bytes, event: str = "push", delivery: str | None = None,
            secret: str = SECRET, signature: str | None = None, content_type: str = "application/json") -> httpx.Response:
    sig = signature or "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return httpx.post(f"{stack.config().api_url}/webhooks/github/{project}", content=body, timeout=30,
                      verify=stack.config().http_verify(), headers={
        "X-Hub-Signature-256": sig, "X-GitHub-Event": event, "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "Content-Type": content_type, "User-Agent": "GitHub-Hookshot/abc123"})


@pytest.fixture
def hooked(api, new_project):
    """A project with a webhook secret; returns (name, sha, repo)."""
    name, sha, repo = new_project("mkdir -p dist && echo ok > dist/ok")
    r = api.put(f"/projects/{name}", json={"repoURL": str(repo), "webhookSecret": SECRET})
    assert r.status_code == 200, r.text
    return name, sha, repo


def test_webhook_secret_is_never_returned(api, hooked):
    name, _, _ = hooked
    for r in (api.get(f"/projects/{name}"), api.get("/projects")):
        assert r.status_code == 200 and SECRET not in r.text
    assert api.get(f"/projects/{name}").json()["webhookConfigured"] is True


def test_push_to_default_branch_builds_once_per_delivery(stack, api, hooked):
    name, sha, _ = hooked
    body = json.dumps(push_payload(sha)).encode()
    first = deliver(stack, name, body, delivery="d-" + uuid.uuid4().hex)
    assert first.status_code == 202, first.text
    build_id = first.json()["buildID"]
    replay = deliver(stack, name, body, delivery=first.request.headers["X-GitHub-Delivery"])
    assert replay.status_code == 200 and replay.json() == {**first.json(), "duplicate": True}
    rec = wait_build(api, name, build_id)
    assert rec["buildStatus"] == "SUCCEEDED" and rec["commitSHA"] == sha
    assert rec["buildDetails"]["branch"] == "main" and rec["buildDetails"]["source"] == "github-webhook"
    ids = [b["buildID"] for b in api.get(f"/projects/{name}/builds").json()["builds"]]
    assert ids == [build_id]  # the replay built nothing


def test_a_form_encoded_push_queues_the_same_build_as_the_json_one(stack, api, hooked):
    """GitHub's default content type for a new webhook: payload=<the JSON, URL-encoded>, signed as sent."""
    from urllib.parse import urlencode
    name, sha, _ = hooked
    as_json = json.dumps(push_payload(sha)).encode()
    form = urlencode({"payload": as_json.decode()}).encode()
    r = deliver(stack, name, form, content_type="application/x-www-form-urlencoded")
    assert r.status_code == 202, r.text
    j = deliver(stack, name, as_json)
    assert j.status_code == 202, j.text
    builds = [wait_build(api, name, x.json()["buildID"]) for x in (r, j)]
    same = ("commitSHA", "buildStatus")
    assert [{k: b[k] for k in same} for b in builds] == [{"commitSHA": sha, "buildStatus": "SUCCEEDED"}] * 2
    assert builds[0]["buildDetails"]["branch"] == builds[1]["buildDetails"]["branch"] == "main"
    assert builds[0]["buildDetails"]["pusher"] == builds[1]["buildDetails"]["pusher"] == "dana"
    sig = "sha256=" + hmac.new(SECRET.encode(), form, hashlib.sha256).hexdigest()
    tampered = form.replace(b"dana", b"mall")
    assert deliver(stack, name, tampered, signature=sig, content_type="application/x-www-form-urlencoded").status_code == 401
    r = deliver(stack, name, b"other=1", content_type="application/x-www-form-urlencoded")
    assert r.status_code == 400 and "payload" in r.json()["detail"]


def test_bad_signatures_other_branches_and_events_build_nothing(stack, api, hooked):
    name, sha, _ = hooked
    body = json.dumps(push_payload(sha)).encode()
    assert deliver(stack, name, body, secret="not-the-secret-at-all").status_code == 401
    assert deliver(stack, name, body, signature="sha256=" + "0" * 64).status_code == 401
    tampered = body.replace(b'"dana"', b'"mallory"')
    sig = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert deliver(stack, name, tampered, signature=sig).status_code == 401
    r = deliver(stack, name, json.dumps(push_payload(sha, branch="feature/x")).encode())
    assert r.status_code == 200 and r.json()["queued"] is False and "feature/x" in r.json()["reason"]
    r = deliver(stack, name, json.dumps({"zen": "Keep it logically awesome.", "hook_id": 1}).encode(), event="ping")
    assert r.status_code == 200 and r.json()["reason"] == "pong"
    r = deliver(stack, name, json.dumps({"action": "opened", "number": 7}).encode(), event="pull_request")
    assert r.status_code == 200 and r.json()["queued"] is False
    deleted = {**push_payload("0" * 40), "deleted": True}
    assert deliver(stack, name, json.dumps(deleted).encode()).json()["queued"] is False
    r = deliver(stack, name, b"{not json")
    assert r.status_code == 400 and r.json()["error"] == "invalid push payload"
    assert api.get(f"/projects/{name}/builds").json()["builds"] == []
    unhooked = httpx.post(f"{stack.config().api_url}/webhooks/github/no-such-project", content=body,
                          verify=stack.config().http_verify())
    assert unhooked.status_code == 404


def test_webhook_without_a_secret_is_refused(stack, api, new_project):
    name, sha, _ = new_project("mkdir -p dist && echo ok > dist/ok")
    r = deliver(stack, name, json.dumps(push_payload(sha)).encode())
    assert r.status_code == 409 and r.json()["error"] == "webhook not configured"


def test_coalescing_cancels_superseded_queued_builds_and_says_so(stack, api, hooked):
    name, sha, repo = hooked
    assert api.put(f"/projects/{name}", json={"repoURL": str(repo), "coalesce": True}).json()["coalesce"] is True
    # Hold both builders busy (API builds, which are never coalesced) so the pushes stay QUEUED.
    slow = commit(repo, {"gantry.toml": '[build]\ncommand = "sleep 5; mkdir -p dist; echo b > dist/b"\noutput = "dist"\n'})
    blockers = [api.post(f"/projects/{name}/builds", json={"commitSHA": slow, "priority": 9}).json()["buildID"]
                for _ in range(2)]
    older = deliver(stack, name, json.dumps(push_payload(sha)).encode()).json()["buildID"]
    newer_sha = commit(repo, {"README": "v2"})
    newer = deliver(stack, name, json.dumps(push_payload(newer_sha, before=sha)).encode()).json()
    assert older in newer["superseded"]
    rec = api.get(f"/projects/{name}/builds/{older}").json()
    assert rec["buildStatus"] == "CANCELLED" and rec["supersededBy"] == newer["buildID"]
    assert newer["buildID"] in rec["error"]
    assert wait_build(api, name, newer["buildID"], timeout_s=180)["buildStatus"] == "SUCCEEDED"
    for b in blockers:  # builds not from the default branch's pushes are never coalesced away
        assert wait_build(api, name, b, timeout_s=180)["buildStatus"] == "SUCCEEDED"


def test_project_rate_limit_answers_429_with_retry_after_then_recovers(api, new_project):
    name, sha, repo = new_project("mkdir -p dist && echo ok > dist/ok")
    r = api.put(f"/projects/{name}", json={"repoURL": str(repo), "rateLimit": {"perSecond": 0.5, "burst": 3}})
    assert r.json()["rateLimit"] == {"perSecond": 0.5, "burst": 3}
    codes = [api.post(f"/projects/{name}/builds", json={"commitSHA": sha}) for _ in range(4)]
    assert [c.status_code for c in codes[:3]] == [202, 202, 202]
    limited = codes[3]
    assert limited.status_code == 429 and limited.json()["detail"]["scope"] == f"project:{name}"
    wait = int(limited.headers["Retry-After"])
    assert 1 <= wait <= 2
    assert api.get(f"/projects/{name}/builds").status_code == 200  # reads are not project writes
    time.sleep(wait)
    assert api.post(f"/projects/{name}/builds", json={"commitSHA": sha}).status_code == 202


def test_user_rate_limit_from_the_token(stack, api, new_project):
    name, _, _ = new_project("mkdir -p dist && echo ok > dist/ok")
    token = issue(stack.config().jwt_secret(), f"bot-{uuid.uuid4().hex[:6]}", [name], rate=(1.0, 2))
    with client(stack, token) as bot:
        codes = [bot.get(f"/projects/{name}/builds").status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        r = bot.get(f"/projects/{name}/builds")
        assert r.status_code == 429 and r.json()["detail"]["scope"].startswith("user:bot-")
        time.sleep(int(r.headers["Retry-After"]))
        assert bot.get(f"/projects/{name}/builds").status_code == 200
    assert api.get(f"/projects/{name}/builds").status_code == 200  # others are not affected


def test_audit_records_each_action(stack, api, new_project):
    name, sha, _ = new_project("mkdir -p dist && echo ok > dist/ok")
    b1 = api.post(f"/projects/{name}/builds", json={"commitSHA": sha}).json()["buildID"]
    assert wait_build(api, name, b1)["buildStatus"] == "SUCCEEDED"
    b2 = api.post(f"/projects/{name}/builds", json={"commitSHA": sha}).json()["buildID"]
    api.patch(f"/projects/{name}/builds/{b2}", params={"op": "CANCEL"})
    dep = api.post(f"/projects/{name}/deployments", json={"buildID": b1, "strategy": {"steps": [1.0], "bakeS": 0}}).json()
    api.post(f"/projects/{name}/deployments/{dep['deploymentID']}", params={"op": "PAUSE"})
    api.post(f"/projects/{name}/deployments/{dep['deploymentID']}", params={"op": "RESUME"})
    api.post(f"/projects/{name}/rollback", json={"buildID": b1})
    entries, cursor = [], None
    while True:  # two at a time, to walk the cursor
        page = api.get("/audit", params={"project": name, "limit": 2, **({"nextCursor": cursor} if cursor else {})}).json()
        entries += page["entries"]
        cursor = page["nextCursor"]
        if not cursor:
            break
    actions = [e["action"] for e in reversed(entries)]
    assert actions == ["project.register", "build.create", "build.create", "build.cancel", "deployment.create",
                       "deployment.pause", "deployment.resume", "rollback"]
    assert all(e["user"] == "admin" and e["project"] == name for e in entries)
    assert {e["target"] for e in entries if e["action"].startswith("build.")} == {b1, b2}
    viewer = issue(stack.config().jwt_secret(), "viewer", [name])
    with client(stack, viewer) as c:
        assert c.get("/audit").status_code == 403


def test_etag_and_304_on_build_and_deployment_reads(api, new_project):
    name, sha, _ = new_project("mkdir -p dist && echo ok > dist/ok")
    build_id = api.post(f"/projects/{name}/builds", json={"commitSHA": sha}).json()["buildID"]
    wait_build(api, name, build_id)
    fast = {"steps": [1.0], "minHealthy": 0.9, "bakeS": 0}
    dep_id = api.post(f"/projects/{name}/deployments", json={"buildID": build_id, "strategy": fast}).json()["deploymentID"]
    # once it is over and its prediction (made off the request path) has landed, nothing changes
    wait_until(lambda: (lambda d: d["status"] == "COMPLETED" and d["prediction"] is not None)(
        api.get(f"/projects/{name}/deployments/{dep_id}").json()), 120, "the deployment and its prediction")
    for path in (f"/projects/{name}/builds/{build_id}", f"/projects/{name}/builds",
                 f"/projects/{name}/deployments/{dep_id}", f"/projects/{name}/deployments"):
        r = api.get(path)
        etag = r.headers["ETag"]
        assert r.status_code == 200 and r.headers["Cache-Control"] == "private, no-cache"
        again = api.get(path, headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.content == b"" and again.headers["ETag"] == etag
        assert api.get(path, headers={"If-None-Match": '"stale"'}).status_code == 200
    # a change gives a new ETag
    listed = api.get(f"/projects/{name}/deployments").headers["ETag"]
    dep_id = api.post(f"/projects/{name}/deployments", json={"buildID": build_id}).json()["deploymentID"]
    assert api.get(f"/projects/{name}/deployments", headers={"If-None-Match": listed}).status_code == 200
    api.post(f"/projects/{name}/deployments/{dep_id}", params={"op": "PAUSE"})
    before = api.get(f"/projects/{name}/deployments/{dep_id}").headers["ETag"]
    api.post(f"/projects/{name}/deployments/{dep_id}", params={"op": "ABORT"})
    after = api.get(f"/projects/{name}/deployments/{dep_id}", headers={"If-None-Match": before})
    assert after.status_code == 200 and after.json()["status"] == "ABORTED"


def test_openapi_describes_every_route_error_and_model(api):
    spec = api.get("/openapi.json").json()
    routes = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}
    app_routes = {(m, r.path) for r in api_routes() for m in r.methods if m != "HEAD"}
    assert app_routes - {("GET", "/"), ("GET", "/ui")} <= routes
    assert {("POST", "/webhooks/github/{projectName}"), ("GET", "/audit"), ("GET", "/projects/{projectName}/deployments"),
            ("POST", "/admin/archive")} <= routes
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            if path != "/healthz":
                assert {"401", "429", "422"} <= set(op["responses"]), (method, path)
    assert {"Build", "BuildPage", "Deployment", "DeploymentPage", "AuditPage", "Error", "Project",
            "WebhookResult"} <= set(spec["components"]["schemas"])
    assert api.get("/docs").status_code == 200


def api_routes():
    from fastapi.routing import APIRoute

    from gantry.serve_app.app import app
    return [r for r in app.routes if isinstance(r, APIRoute) and r.include_in_schema]   # not the docs pages


def test_metrics_on_the_prometheus_endpoints(stack, api, new_project):
    name, sha, _ = new_project("mkdir -p dist && echo ok > dist/ok")
    build_id = api.post(f"/projects/{name}/builds", json={"commitSHA": sha}).json()["buildID"]
    assert wait_build(api, name, build_id)["buildStatus"] == "SUCCEEDED"
    status = stack.status()
    assert status["metricsURL"] == status["metricsTargets"]["ray-head"]
    wanted = {"ray_gantry_queue_depth", "ray_gantry_builds", "ray_gantry_build_duration_seconds_bucket",
              "ray_gantry_replication_bytes_total", "ray_gantry_replication_duration_seconds_bucket",
              "ray_gantry_rollout_hosts", "ray_gantry_api_requests_total", "ray_gantry_api_request_seconds_bucket"}
    deadline, seen = time.monotonic() + 60, set()
    while time.monotonic() < deadline and not wanted <= seen:
        text = "\n".join(httpx.get(url, timeout=10).text for url in status["metricsTargets"].values())
        seen = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line.startswith("ray_gantry")}
        time.sleep(2)
    assert wanted <= seen, wanted - seen
    assert 'route="/projects/{projectName}/builds"' in text and 'code="202"' in text
    assert any(line.startswith("ray_gantry_builds{") and 'status="SUCCEEDED"' in line for line in text.splitlines())


def test_archive_round_trip_with_seamless_pagination(stack, api, new_project):
    # failed builds: a SUCCEEDED one leaves Redis only once retention expires it (tests/chaos/test_gc_races.py)
    name, sha, _ = new_project("echo building; exit 3")
    ids = [api.post(f"/projects/{name}/builds", json={"commitSHA": sha}).json()["buildID"] for _ in range(5)]
    for b in ids:
        wait_build(api, name, b)
    time.sleep(1.5)
    # two more stay live: finished (cancelled) but newer than the cutoff
    for _ in range(2):
        ids.append(api.post(f"/projects/{name}/builds", json={"commitSHA": sha}).json()["buildID"])
        api.patch(f"/projects/{name}/builds/{ids[-1]}", params={"op": "CANCEL"})
    before = [(b["buildID"], b["buildStatus"]) for b in walk(api, name, 3)]
    full_before = {b: api.get(f"/projects/{name}/builds/{b}").json() for b in ids[:5]}
    log_before = api.get(f"/projects/{name}/builds/{ids[0]}/logs").json()["data"]
    cutoff = newest_created(api, name, ids[:5]) + 0.75
    moved = api.post("/admin/archive", params={"olderThanS": time.time() - cutoff}).json()["moved"]
    assert moved.get(name) == 5
    # nothing lost or repeated, in the same order, at every page size
    for size in (1, 2, 3, 7, 100):
        assert [(b["buildID"], b["buildStatus"]) for b in walk(api, name, size)] == before
    for b in ids[:5]:
        got = api.get(f"/projects/{name}/builds/{b}").json()
        assert got == full_before[b]
    assert api.get(f"/projects/{name}/builds/{ids[0]}/logs").json()["data"] == log_before
    keys = stack_archive_keys(stack, name)
    assert keys and all(f"project={name}/month=" in k and k.endswith(".parquet") for k in keys)
    # archiving again moves nothing more, and still nothing repeats
    assert api.post("/admin/archive", params={"olderThanS": time.time() - cutoff}).json()["moved"].get(name) is None
    assert [(b["buildID"], b["buildStatus"]) for b in walk(api, name, 2)] == before
    r = api.post(f"/projects/{name}/deployments", json={"buildID": ids[0]})
    assert r.status_code == 409 and r.json()["detail"].startswith("build is FAILED")


def walk(api, name: str, size: int) -> list[dict]:
    out, cursor = [], None
    while True:
        page = api.get(f"/projects/{name}/builds", params={"limit": size, **({"nextCursor": cursor} if cursor else {})}).json()
        out += page["builds"]
        cursor = page["nextCursor"]
        if not cursor:
            return out


def newest_created(api, name: str, ids: list[str]) -> float:
    from datetime import datetime
    return max(datetime.fromisoformat(api.get(f"/projects/{name}/builds/{b}").json()["createdAt"].replace("Z", "+00:00")).timestamp()
               for b in ids)


def stack_archive_keys(stack, name: str) -> list[str]:
    from gantry.artifacts.blobstore import s3_for
    cfg = stack.config()
    return s3_for(cfg.primary, cfg.s3_access_key, cfg.s3_secret_key).list(f"archive/builds/project={name}/")
