"""Real HTTP servers on loopback that stand in for what gantry notifies: a webhook subscriber
(that can be down or hang), and a GitHub REST API that checks each request against GitHub's
published schema through githubkit's own typed models."""
from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Server:
    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                status, headers, out = owner.handle("POST", self.path, dict(self.headers.items()), body)
                try:
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(out)))
                    self.end_headers()
                    self.wfile.write(out)
                except (BrokenPipeError, ConnectionResetError):
                    pass   # the client gave up waiting (a subscriber made to hang)

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Subscriber(_Server):
    """Records every POST (at, path, headers, body). `hang()`: answers nothing until `release()`."""

    def __init__(self, port: int = 0):
        self.received: list[dict] = []
        self.status = 200
        self.released = threading.Event()
        self.released.set()
        super().__init__(port=port)

    def hang(self) -> None:
        self.released.clear()

    def release(self) -> None:
        self.released.set()

    def close(self) -> None:
        self.release()
        super().close()

    def handle(self, method, path, headers, body):
        self.released.wait(60)
        self.received.append({"at": time.time(), "path": path, "headers": {k.lower(): v for k, v in headers.items()},
                              "body": body})
        return self.status, {}, b"{}"

    def events(self) -> list[str]:
        return [json.loads(r["body"])["event"] for r in self.received]


def _models():
    from githubkit_schemas.latest import models as m
    return m


class FakeGitHub(_Server):
    """The three routes gantry calls. Every request is checked: the token, GitHub's media type and
    API version headers, and a JSON body that validates against githubkit's model of the route's
    body with no field that model lacks; answers are built to validate against the response
    models. `rate_limit_first`: that many requests are answered 403 with X-RateLimit-Remaining 0
    and a reset `reset_s` later."""

    def __init__(self, token: str, rate_limit_first: int = 0, reset_s: int = 3):
        self.token, self.rate_limit_first, self.reset_s = token, rate_limit_first, reset_s
        self.requests: list[dict] = []
        self.problems: list[str] = []
        self.deployments: dict[int, dict] = {}
        self.lock = threading.Lock()
        m = _models()
        self.routes = [
            (re.compile(r"^/repos/([^/]+)/([^/]+)/statuses/([0-9a-f]{40})$"), m.ReposOwnerRepoStatusesShaPostBody,
             m.Status, self._status),
            (re.compile(r"^/repos/([^/]+)/([^/]+)/deployments$"), m.ReposOwnerRepoDeploymentsPostBody,
             m.Deployment, self._deployment),
            (re.compile(r"^/repos/([^/]+)/([^/]+)/deployments/(\d+)/statuses$"),
             m.ReposOwnerRepoDeploymentsDeploymentIdStatusesPostBody, m.DeploymentStatus, self._deployment_status),
        ]
        super().__init__()

    def handle(self, method, path, headers, body):
        h = {k.lower(): v for k, v in headers.items()}
        with self.lock:
            if self.rate_limit_first > 0:
                self.rate_limit_first -= 1
                reset = int(time.time()) + self.reset_s
                self.requests.append({"at": time.time(), "path": path, "rateLimited": True, "reset": reset})
                return 403, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset)}, json.dumps(
                    {"message": "API rate limit exceeded", "documentation_url": "https://docs.github.com/rest"}).encode()
            problems = self._check_headers(h)
            for pattern, body_model, answer_model, answer in self.routes:
                m = pattern.match(path)
                if not m:
                    continue
                try:
                    data = json.loads(body)
                    body_model.model_validate(data)
                    known = {f.alias or name for name, f in body_model.model_fields.items()}
                    problems += [f"{path}: field {k!r} is not in {body_model.__name__}" for k in set(data) - known]
                except Exception as e:
                    problems.append(f"{path}: body does not validate against {body_model.__name__}: {e}")
                    data = {}
                out = answer(m, data)
                answer_model.model_validate(out)   # what githubkit will parse
                self.requests.append({"at": time.time(), "path": path, "body": data, "problems": problems})
                self.problems += problems
                return 201, {}, json.dumps(out).encode()
            self.problems.append(f"no GitHub route {method} {path}")
            return 404, {}, b'{"message": "Not Found"}'

    def _check_headers(self, h: dict) -> list[str]:
        out = []
        if h.get("authorization") not in (f"token {self.token}", f"Bearer {self.token}"):
            out.append(f"wrong Authorization: {h.get('authorization')!r}")
        if "application/vnd.github" not in h.get("accept", ""):
            out.append(f"Accept is not GitHub's media type: {h.get('accept')!r}")
        if not re.match(r"^\d{4}-\d{2}-\d{2}$", h.get("x-github-api-version", "")):
            out.append("no X-GitHub-Api-Version")
        if not h.get("content-type", "").startswith("application/json"):
            out.append(f"Content-Type is {h.get('content-type')!r}")
        return out

    def calls(self) -> list[tuple]:
        """(what, state) of each accepted request, in order: ("status", "pending"), ("deployment", ref),
        ("deployment_status", "in_progress")."""
        out = []
        for r in self.requests:
            if r.get("rateLimited"):
                continue
            kind = ("deployment_status" if r["path"].endswith("/statuses") and "/deployments/" in r["path"]
                    else "status" if "/statuses/" in r["path"] else "deployment")
            out.append((kind, r["body"].get("state") or r["body"].get("ref")))
        return out

    # --- answers --------------------------------------------------------------------------------

    def _user(self) -> dict:
        base = f"{self.url}/users/gantry"
        return {"login": "gantry", "id": 1, "node_id": "U_1", "avatar_url": f"{base}.png", "gravatar_id": "",
                "url": base, "html_url": base, "followers_url": base, "following_url": base, "gists_url": base,
                "starred_url": base, "subscriptions_url": base, "organizations_url": base, "repos_url": base,
                "events_url": base, "received_events_url": base, "type": "Bot", "site_admin": False}

    def _now(self) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

    def _status(self, m, data) -> dict:
        n = len(self.requests) + 1
        return {"url": f"{self.url}/repos/{m[1]}/{m[2]}/statuses/{m[3]}", "avatar_url": None, "id": n,
                "node_id": f"SC_{n}", "state": data.get("state", "pending"), "description": data.get("description"),
                "target_url": data.get("target_url"), "context": data.get("context", "default"),
                "created_at": self._now(), "updated_at": self._now(), "creator": self._user()}

    def _deployment(self, m, data) -> dict:
        n = 1000 + len(self.deployments)
        repo = f"{self.url}/repos/{m[1]}/{m[2]}"
        out = {"url": f"{repo}/deployments/{n}", "id": n, "node_id": f"DE_{n}", "sha": data.get("ref", ""),
               "ref": data.get("ref", ""), "task": data.get("task", "deploy"), "payload": data.get("payload") or {},
               "environment": data.get("environment", "production"), "description": data.get("description"),
               "creator": self._user(), "created_at": self._now(), "updated_at": self._now(),
               "statuses_url": f"{repo}/deployments/{n}/statuses", "repository_url": repo}
        self.deployments[n] = out
        return out

    def _deployment_status(self, m, data) -> dict:
        n = len(self.requests) + 1
        repo = f"{self.url}/repos/{m[1]}/{m[2]}"
        if int(m[3]) not in self.deployments:
            self.problems.append(f"a status for deployment {m[3]}, which was never created")
        return {"url": f"{repo}/deployments/{m[3]}/statuses/{n}", "id": n, "node_id": f"DES_{n}",
                "state": data.get("state", "pending"), "creator": self._user(), "description": data.get("description", ""),
                "environment": data.get("environment", ""), "target_url": "", "log_url": data.get("log_url", ""),
                "created_at": self._now(), "updated_at": self._now(), "deployment_url": f"{repo}/deployments/{m[3]}",
                "repository_url": repo}
