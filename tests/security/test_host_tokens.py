"""Issue 12, point 4: a host token speaks for one host in one datacenter, and hosts hold no
blob-store credentials. Against the real coordinator endpoints, coordinators and node daemons."""
import time

import httpx
import jwt
import pytest

from conftest import client, host_endpoint
from gantry.auth import issue, issue_host
from gantry.state import State


def report(host_id, **kw):
    return {"hostID": host_id, "region": "us-east", "address": "127.0.0.1:9",
            "projects": {"victims": {"state": "failed", "error": "pwned"}}, **kw}


@pytest.fixture
def victim(stack):
    return sorted(h for h in stack.hosts() if h.startswith("us-east-a"))[0]


def test_a_host_token_cannot_speak_for_another_host_or_datacenter(stack, victim):
    secret, state = stack.config().jwt_secret(), State(stack.config().redis_url)
    deadline = time.time() + 60   # the stack may have just started: the victim's first report
    while (before := state.hosts.get("us-east-a", victim)) is None and time.time() < deadline:
        time.sleep(0.5)
    assert before is not None, f"{victim} never reported"
    token = issue_host(secret, "intruder", "us-east-a")
    peers = {"hostID": victim, "address": "127.0.0.1:9", "artifact": "blake3:" + "0" * 64, "chunks": 1,
             "wanted": "AQ==", "have": ""}
    with host_endpoint(stack, token, "us-east-a") as c:
        for path, body in (("heartbeat", report(victim)), ("peers", peers), ("watch", {"hostID": victim, "version": 0}),
                           ("repair", {"hostID": victim, "digest": "blake3:" + "0" * 64}),
                           ("origin", {"hostID": victim, "artifact": "blake3:" + "0" * 64, "digests": []})):
            r = c.post(f"/{path}", json=body)
            assert r.status_code == 403 and "intruder" in r.json()["detail"], (path, r.text)
    with client(stack, token) as c:
        assert c.get("/dc/eu-west-a/endpoint").status_code == 403   # not told where another datacenter reports
    with host_endpoint(stack, issue_host(secret, "x", "eu-west-a"), "eu-west-a") as eu:
        r = httpx.post(str(eu.base_url).rstrip("/") + "/heartbeat", json=report("intruder", region="eu-west"),
                       headers={"Authorization": f"Bearer {token}"}, verify=stack.config().http_verify())
        assert r.status_code == 403                        # its own ID, but another datacenter's endpoint
    after = state.hosts.get("us-east-a", victim)
    assert after["address"] == before["address"] and "victims" not in state.hosts.targets("us-east-a", victim)
    assert all(h.get("error") != "pwned" for h in state.hosts.for_project("us-east-a", "victims"))
    assert state.hosts.get("us-east-a", "intruder") is None             # nothing was recorded for it either


def test_tokens_that_are_not_host_tokens_or_are_malformed_are_refused(stack, victim):
    secret = stack.config().jwt_secret()
    user = issue(secret, "dana", admin=True)
    unbound = jwt.encode({"sub": "host:x", "host": True, "exp": 4_000_000_000}, secret, algorithm="HS256")
    url = str(host_endpoint(stack, issue_host(secret, victim, "us-east-a"), "us-east-a").base_url).rstrip("/") + "/"
    for token, code in ((user, 403), (unbound, 401), ("forged." + user.split(".", 1)[1], 401)):
        r = httpx.post(url + "heartbeat", json=report(victim), headers={"Authorization": f"Bearer {token}"},
                       verify=stack.config().http_verify())
        assert r.status_code == code, r.text
        with client(stack, token) as c:
            assert c.get("/dc/us-east-a/endpoint").status_code == code
    with pytest.raises(ValueError):
        issue_host(secret, "../etc", "us-east-a")


def test_a_host_gets_store_urls_only_for_its_own_target(stack, victim):
    token = issue_host(stack.config().jwt_secret(), victim, "us-east-a")
    with host_endpoint(stack, token, "us-east-a") as c:
        r = c.post("/origin", json={"hostID": victim, "artifact": "blake3:" + "1" * 64,
                                    "digests": ["blake3:" + "2" * 64]})
        assert r.status_code == 403, r.text
        r = c.post("/origin", json={"hostID": victim, "artifact": "blake3:" + "1" * 64, "digests": ["../../secret"]})
        assert r.status_code == 422


def test_the_endpoint_refuses_oversized_bodies_and_bitfields_that_do_not_fit(stack, victim):
    token = issue_host(stack.config().jwt_secret(), victim, "us-east-a")
    with host_endpoint(stack, token, "us-east-a") as c:
        r = c.post("/heartbeat", content=b"{" + b" " * (2 << 20) + b"}", headers={"Content-Type": "application/json"})
        assert r.status_code == 413, r.text
        big = {"artifact": "blake3:" + "1" * 64, "chunks": 2, "bits": "/w==", "complete": False}   # bits 0-7 of 2
        r = c.post("/heartbeat", json={**report(victim), "projects": {}, "artifacts": [big]})
        assert r.status_code == 400 and "beyond" in r.json()["detail"], r.text
        r = c.post("/peers", json={"hostID": victim, "address": "127.0.0.1:9", "artifact": "blake3:" + "1" * 64,
                                   "chunks": 1, "wanted": "not base64!", "have": ""})
        assert r.status_code == 400, r.text
    with client(stack, token) as c:   # the head node's API takes no reports at all
        assert c.post("/dc/us-east-a/heartbeat", json=report(victim)).status_code in (404, 405)


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
