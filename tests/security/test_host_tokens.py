"""Issue 12, point 4: a host token speaks for one host in one datacenter, and hosts hold no
blob-store credentials. Against the real gateway, coordinators and node daemons."""
import jwt
import pytest

from conftest import client
from gantry.serve_app.auth import issue, issue_host
from gantry.state import State


def report(host_id, **kw):
    return {"hostID": host_id, "region": "us-east", "address": "127.0.0.1:9",
            "projects": {"victims": {"state": "failed", "error": "pwned"}}, **kw}


@pytest.fixture
def victim(stack):
    return sorted(h for h in stack.hosts() if h.startswith("us-east-a"))[0]


def test_a_host_token_cannot_speak_for_another_host_or_datacenter(stack, victim):
    secret, state = stack.config().jwt_secret(), State(stack.config().redis_url)
    before = state.hosts.get(victim)
    with client(stack, issue_host(secret, "intruder", "us-east-a")) as c:
        for path, body in (("heartbeat", report(victim)), ("peers", {"hostID": victim, "artifact": "x", "wanted": []}),
                           ("repair", {"hostID": victim, "digest": "blake3:" + "0" * 64}),
                           ("origin", {"hostID": victim, "artifact": "blake3:" + "0" * 64, "digests": []})):
            r = c.post(f"/dc/us-east-a/{path}", json=body)
            assert r.status_code == 403 and "intruder" in r.json()["detail"], (path, r.text)
        r = c.post("/dc/eu-west-a/heartbeat", json=report("intruder", region="eu-west"))
        assert r.status_code == 403                        # its own ID, but another datacenter
    after = state.hosts.get(victim)
    assert after["address"] == before["address"] and "victims" not in state.hosts.targets(victim)
    assert all(h.get("error") != "pwned" for h in state.hosts.for_project("us-east-a", "victims"))
    assert state.hosts.get("intruder") is None             # nothing was recorded for it either


def test_tokens_that_are_not_host_tokens_or_are_malformed_are_refused(stack, victim):
    secret = stack.config().jwt_secret()
    user = issue(secret, "dana", admin=True)
    unbound = jwt.encode({"sub": "host:x", "host": True, "exp": 4_000_000_000}, secret, algorithm="HS256")
    for token, code in ((user, 403), (unbound, 401)):
        with client(stack, token) as c:
            assert c.post("/dc/us-east-a/heartbeat", json=report(victim)).status_code == code
    with pytest.raises(ValueError):
        issue_host(secret, "../etc", "us-east-a")


def test_a_host_gets_store_urls_only_for_its_own_target(stack, victim):
    token = issue_host(stack.config().jwt_secret(), victim, "us-east-a")
    with client(stack, token) as c:
        r = c.post("/dc/us-east-a/origin", json={"hostID": victim, "artifact": "blake3:" + "1" * 64,
                                                 "digests": ["blake3:" + "2" * 64]})
        assert r.status_code == 403, r.text
        r = c.post("/dc/us-east-a/origin", json={"hostID": victim, "artifact": "blake3:" + "1" * 64,
                                                 "digests": ["../../secret"]})
        assert r.status_code == 422


def test_no_daemon_holds_the_blob_store_secret(stack):
    cfg = stack.config()
    alive = stack.status()["processes"]
    daemons = {name: p["pid"] for name, p in stack.pids().items() if p.get("host") and alive.get(name)}
    assert daemons
    for name, pid in daemons.items():
        for part in ("environ", "cmdline"):
            with open(f"/proc/{pid}/{part}", "rb") as f:
                seen = f.read()
            assert cfg.s3_secret_key.encode() not in seen and cfg.s3_access_key.encode() not in seen, (name, part)
