"""Auth, validation and pagination through the real API. Bad input is a JSON 4xx and changes nothing."""
import uuid

import httpx
import pytest

from gantry.state import State
from gantry.statuses import BuildStatus
from gantry.auth import issue
from conftest import client


def count(api, project):
    return len(api.get(f"/projects/{project}/builds", params={"limit": 100}).json()["builds"])


@pytest.fixture
def idle_project(api, tmp_path):
    """A registered project whose builds are never meant to run (no repository behind it)."""
    name = f"idle-{uuid.uuid4().hex[:8]}"
    assert api.put(f"/projects/{name}", json={"repoURL": str(tmp_path / "none")}).status_code == 201
    return name


def test_healthz_needs_no_token(stack):
    r = httpx.get(stack.config().api_url + "/healthz", timeout=30, verify=stack.config().http_verify())
    assert r.status_code == 200 and r.json()["ok"] is True
    assert r.json()["redis"] is True and r.json()["ray"] is True
    assert r.json()["stores"] == {region.name: True for region in stack.config().regions}


def test_401_without_or_with_a_bad_token(stack, idle_project):
    for token in (None, "not-a-jwt", issue("x" * 32, "mallory", admin=True)):
        with client(stack, token) as c:
            r = c.get(f"/projects/{idle_project}/builds")
        assert r.status_code == 401 and r.json()["error"] == "unauthorized" and r.json()["detail"]


def test_403_for_another_project_and_for_non_admin_registration(stack, api, idle_project):
    with client(stack, issue(stack.config().jwt_secret(), "bob", ["other"])) as bob:
        r = bob.post(f"/projects/{idle_project}/builds", json={"commitSHA": "a" * 40})
        assert r.status_code == 403 and r.json()["error"] == "forbidden"
        assert bob.put("/projects/other", json={"repoURL": "/x"}).status_code == 403
    assert count(api, idle_project) == 0
    with client(stack, issue(stack.config().jwt_secret(), "carol", [idle_project])) as carol:
        assert carol.get(f"/projects/{idle_project}/builds").status_code == 200


def test_404s(api, idle_project):
    assert api.get("/projects/nope-nope/builds").status_code == 404
    r = api.get(f"/projects/{idle_project}/builds/{'f' * 32}")
    assert r.status_code == 404 and r.json() == {"error": "build not found", "detail": "f" * 32}


@pytest.mark.parametrize("body,status", [
    ({"commitSHA": "abc"}, 422),
    ({"commitSHA": "g" * 40}, 422),
    ({"commitSHA": "a" * 41}, 422),
    ({}, 422),
    ({"commitSHA": "a" * 40, "priority": 42}, 422),
    ({"commitSHA": "a" * 40, "surprise": 1}, 422),
    ({"commitSHA": "a" * 40, "buildDetails": {"env": {"BAD NAME": "x"}}}, 422),
    ({"commitSHA": "a" * 40, "buildDetails": {"env": {"x": "y" * 70000}}}, 413),
])
def test_malformed_builds_are_refused_and_change_nothing(api, idle_project, body, status):
    r = api.post(f"/projects/{idle_project}/builds", json=body)
    assert r.status_code == status and set(r.json()) == {"error", "detail"}
    assert count(api, idle_project) == 0


def test_bad_names_limits_cursors_and_ops(api, idle_project):
    assert api.get("/projects/Bad_Name!/builds").status_code == 400
    assert api.put("/projects/UPPER", json={"repoURL": "/x"}).status_code == 400
    assert api.put("/projects/ok-name", json={"repoURL": "ssh://host/repo"}).status_code == 422
    for limit in ("0", "101", "ten"):
        assert api.get(f"/projects/{idle_project}/builds", params={"limit": limit}).status_code == 400
    r = api.get(f"/projects/{idle_project}/builds", params={"nextCursor": "yesterday"})
    assert r.status_code == 400 and r.json()["error"] == "invalid nextCursor"
    assert api.get(f"/projects/{idle_project}/builds/not-an-id").status_code == 400
    assert api.patch(f"/projects/{idle_project}/builds/{'a' * 32}", params={"op": "EXPLODE"}).status_code == 400


def test_pagination_over_many_pages_with_equal_timestamps(api, stack, idle_project):
    store = State(stack.config().redis_url, clock=lambda: 1_700_000_000_000)
    ids = set()
    for _ in range(25):
        b = store.builds.create(idle_project, "b" * 40)["buildID"]
        store.builds.transition(b, BuildStatus.CANCELLED)  # never to be built
        ids.add(b)
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 7, **({"nextCursor": cursor} if cursor else {})}
        page = api.get(f"/projects/{idle_project}/builds", params=params).json()
        assert page["limit"] == 7 and len(page["builds"]) <= 7
        seen += [b["buildID"] for b in page["builds"]]
        pages += 1
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert pages == 4 and len(seen) == 25 and set(seen) == ids
    assert all(b["createdAt"] == "2023-11-14T22:13:20.000Z" for b in page["builds"])
