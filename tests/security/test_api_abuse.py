"""Findings 7, 17 and 18: what an unauthenticated sender, a webhook replayer or a token forger
can do to the API, on the real stack."""
import json
import subprocess
import time
import uuid

import httpx
import jwt

from gantry.webhook import sign
from helpers import api_connection


def peak_rss_kb(title: str) -> int:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    pids = [int(line.split()[0]) for line in out.splitlines() if title in line]
    assert pids, f"no process titled {title}"
    peak = 0
    for pid in pids:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmHWM:"):
                peak = max(peak, int(line.split()[1]))
    return peak


def test_a_chunked_body_over_the_limit_is_refused_while_it_streams(stack, api, new_project):
    """A 300 MiB chunked POST with no auth grew the API replica from 314 to 680 MB. Serve's proxy
    reads a body into an unbounded queue, so the limit runs in the proxy too: past the limit it
    answers 413 and holds nothing of what follows."""
    project, _, _ = new_project("true")
    assert api.put(f"/projects/{project}", json={"repoURL": "/nonexistent", "webhookSecret": "s" * 20}).status_code == 200
    before = {t: peak_rss_kb(t) for t in ("ServeReplica:gantry:gantry-api", "ProxyActor")}
    conn = api_connection(stack, 60)
    conn.putrequest("POST", f"/webhooks/github/{project}")
    conn.putheader("Transfer-Encoding", "chunked")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("X-GitHub-Event", "push")
    conn.endheaders()
    block = b"x" * (1 << 20)
    sent = 0
    try:
        for _ in range(300):
            conn.send(b"%x\r\n%s\r\n" % (len(block), block))
            sent += len(block)
        conn.send(b"0\r\n\r\n")
    except OSError:
        pass   # the server stopped reading: that is the point
    resp = conn.getresponse()
    body = json.loads(resp.read())
    conn.close()
    assert resp.status == 413 and body["error"] == "request body too large", (resp.status, body)
    # Over plain HTTP the client's sends failed before 64 MiB. Over TLS they do not: once the
    # 413 is out, the TLS shutdown (uvloop's) reads and drops what the client still sends, for up
    # to 30 s. What is read is not kept: the memory below must not grow.
    time.sleep(0.5)
    for title, peak in before.items():
        grown_mb = (peak_rss_kb(title) - peak) / 1024
        assert grown_mb < 32, f"{title} peak memory grew by {grown_mb:.0f} MB for a refused body ({sent} bytes sent)"


def push_body(sha: str) -> bytes:
    return json.dumps({"ref": "refs/heads/main", "after": sha, "pusher": {"name": "m"}}).encode()


def test_a_signed_body_replayed_with_a_new_delivery_id_builds_nothing_new(api, stack, new_project):
    project, sha, _ = new_project("mkdir -p dist")
    api.put(f"/projects/{project}", json={"repoURL": "/nonexistent", "webhookSecret": "k" * 20})
    body = push_body(sha)
    answers = []
    for _ in range(3):
        r = api.post(f"/webhooks/github/{project}", content=body, headers={
            "X-Hub-Signature-256": sign("k" * 20, body), "X-GitHub-Event": "push",
            "X-GitHub-Delivery": str(uuid.uuid4()), "Content-Type": "application/json"})
        answers.append(r.json())
    assert answers[0]["queued"] and not answers[0]["duplicate"]
    assert all(a["duplicate"] and a["buildID"] == answers[0]["buildID"] for a in answers[1:]), answers
    builds = api.get(f"/projects/{project}/builds").json()["builds"]
    assert [b["buildID"] for b in builds] == [answers[0]["buildID"]]


def test_a_malformed_signature_is_401_not_500(api, stack, new_project):
    project, sha, _ = new_project("true")
    api.put(f"/projects/{project}", json={"repoURL": "/nonexistent", "webhookSecret": "k" * 20})
    body = push_body(sha)
    for bad in ("sha256=é" + "0" * 63, "sha256=\u00ff\u00fe", "garbage"):
        conn = api_connection(stack, 30)
        conn.putrequest("POST", f"/webhooks/github/{project}")
        conn.putheader("X-Hub-Signature-256", bad.encode("latin-1"))
        conn.putheader("X-GitHub-Event", "push")
        conn.putheader("X-GitHub-Delivery", str(uuid.uuid4()))
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        answer = json.loads(resp.read())
        conn.close()
        assert resp.status == 401 and answer["error"] == "bad signature", (bad, resp.status, answer)


def test_token_claims_must_be_json_booleans(api, stack, new_project):
    """`bool(claims["admin"])` took the string "false" as true."""
    project, _, _ = new_project("true")
    secret = stack.config().jwt_secret()
    now = int(time.time())
    for admin in ("false", 0, "no", [], "true"):
        token = jwt.encode({"sub": "mallory", "projects": [project], "admin": admin, "iat": now, "exp": now + 60},
                           secret, algorithm="HS256")
        r = api.get("/audit", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401 and "JSON boolean" in r.json()["detail"], (admin, r.text)


def test_a_client_that_sends_a_whole_oversized_body_still_reads_the_413(stack, api, new_project):
    """The 413 went out, then the connection was reset while the client was still sending: a
    client that writes its whole body before it reads (httpx, GitHub) got a reset, never the 413."""
    project, _, _ = new_project("true")
    assert api.put(f"/projects/{project}", json={"repoURL": "/nonexistent", "webhookSecret": "s" * 20}).status_code == 200

    def body():
        for _ in range(64):
            yield b"x" * (64 << 10)   # 4 MiB, chunked: far past the 64 KiB limit, within the drain
    with httpx.Client(base_url=stack.config().api_url, timeout=30, verify=stack.config().http_verify()) as c:
        for _ in range(3):
            r = c.post(f"/webhooks/github/{project}", content=body(), headers={
                "X-GitHub-Event": "push", "Content-Type": "application/json"})
            assert r.status_code == 413 and r.json()["error"] == "request body too large", r.text


def test_the_api_docs_load_nothing_from_another_origin(api):
    """/docs and /redoc loaded swagger-ui from a CDN, without integrity hashes, on the origin
    where the dashboard keeps its token."""
    import re
    for page in ("/docs", "/redoc"):
        r = api.get(page)
        assert r.status_code == 200
        refs = re.findall(r'(?:src|href)\s*=\s*["\']([^"\']+)', r.text) + re.findall(r"url:\s*'([^']+)'", r.text)
        assert refs and not [u for u in refs if re.match(r"^(https?:)?//", u)], (page, refs)
        for u in refs:
            if u.endswith((".js", ".css")):
                assert api.get(u).status_code == 200, u
