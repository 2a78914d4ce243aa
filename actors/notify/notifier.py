"""Notifications: the events stream turned into notices for each project's subscriptions and its
GitHub repository, and each destination's notices delivered in order, retried with backoff.

Two halves in one tick. `consume` reads new events (a consumer group: what it had not acknowledged
when it died is read again) and, in one transaction with the acknowledgement, queues a notice per
event and destination. `dispatch` hands each destination whose head notice is due to a worker
thread; a destination that is down or hangs holds its own queue only, and nothing here is on the
path of a build or a rollout."""
from __future__ import annotations

import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import httpx

from gantry.clock import iso_ms
from gantry.notify import deliver
from gantry.notify.deliver import NotDelivered
from gantry.notify.events import describe, named
from gantry.notify.github import GitHubReporter, relevant
from gantry.notify.subscriptions import sub_id, wants
from gantry.state import State

log = logging.getLogger("gantry.notify")
GROUP = "notify"
DRAIN = 200   # notices one worker delivers to a destination in a row before it lets others have the thread
GITHUB = "github"


class Notifier:
    def __init__(self, state: State, page_url: Callable[[str, str, str], str], clock: Callable[[], float] = time.time,
                 max_backoff_s: float = 30.0, give_up_s: float = 24 * 3600, workers: int = 8):
        self.state, self.page_url, self.clock = state, page_url, clock
        self.max_backoff_s, self.give_up_s = max_backoff_s, give_up_s
        self.http = httpx.Client(follow_redirects=False)
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="notify")
        self.inflight: set[str] = set()
        self.lock = threading.Lock()
        self.reporters: dict[str, tuple[str, GitHubReporter]] = {}
        state.events.join(GROUP)

    def tick(self) -> None:
        self.consume()
        self.dispatch()

    # --- events -> notices ----------------------------------------------------------------------

    def consume(self) -> int:
        entries = self.state.events.read(GROUP, "notifier")
        if not entries:
            return 0
        projects: dict[str, dict | None] = {}   # each project's record read once a batch
        notices = [n for event_id, event in entries for n in self.notices_for(event_id, event, projects)]
        with self.state.r.pipeline() as p:
            self.state.notices.enqueue(notices, p)
            self.state.events.ack(GROUP, [i for i, _ in entries], p)
            p.execute()
        return len(notices)

    def notices_for(self, event_id: str, event: dict, projects: dict | None = None) -> list[dict]:
        name = event.get("project") or ""
        projects = {} if projects is None else projects
        if name not in projects:
            projects[name] = self.state.projects.get(name)
        project = projects[name]
        if project is None:
            return []
        subs = json.loads(project.get("notifications") or "[]")
        github = json.loads(project.get("github") or "null")
        if not subs and not github:
            return []
        record, build = self._records(event)
        out = []
        for name in named(event, record):
            body = {"event": name, "project": event["project"], "at": iso_ms(int(event_id.split("-")[0])),
                    "text": describe(name, event, record), "status": event.get("status"), "from": event.get("from") or None,
                    **_subject(event, record, build)}
            dests = [(f"{event['project']}/{sub_id(s)}", "apprise" if s.get("apprise") else "webhook")
                     for s in subs if wants(s, name)]
            if github and relevant(name):
                dests.append((f"{event['project']}/{GITHUB}", GITHUB))
            for dest, kind in dests:
                out.append({"id": f"{event_id}-{len(out)}", "project": event["project"], "dest": dest, "kind": kind,
                            "event": name, "createdAt": int(event_id.split("-")[0]),
                            "payload": json.dumps(body), "raw": json.dumps({"event": event, "record": record, "build": build})})
        return out

    def _records(self, event: dict) -> tuple[dict, dict]:
        if event.get("kind") == "build":
            build = self.state.builds.get(event["id"]) or {}
            return build, build
        dep = self.state.deployments.get(event["id"]) or {}
        return dep, self.state.builds.get(dep.get("buildID") or "") or {}

    # --- notices -> destinations ----------------------------------------------------------------

    def dispatch(self) -> None:
        """Hand each destination whose head notice is due to a worker, which delivers its queue
        in order for as long as each delivery succeeds and the next is due."""
        now_ms = int(self.clock() * 1000)
        for dest in self.state.notices.destinations():
            with self.lock:
                if dest in self.inflight:
                    continue
            head = self.state.notices.head(dest)
            if head is None or int(head.get("nextAt") or 0) > now_ms:
                continue
            with self.lock:
                self.inflight.add(dest)
            self.pool.submit(self._drain, dest, head)

    def _drain(self, dest: str, notice: dict | None) -> None:
        try:
            for _ in range(DRAIN):
                if notice is None or int(notice.get("nextAt") or 0) > self.clock() * 1000 or not self._deliver(dest, notice):
                    return
                notice = self.state.notices.head(dest)
        finally:
            with self.lock:
                self.inflight.discard(dest)

    def _deliver(self, dest: str, notice: dict) -> bool:
        """One attempt at the destination's head notice; True if it is off the queue (delivered
        or given up), False if it waits to be tried again."""
        try:
            self._send(notice)
        except NotDelivered as e:
            now = self.clock()
            attempts = int(notice.get("attempts") or 0) + 1
            if e.permanent or now - int(notice.get("createdAt") or 0) / 1000 > self.give_up_s:
                log.warning("notice %s to %s given up after %d attempts: %s", notice["id"], dest, attempts, e)
                self.state.notices.done(dest, notice["id"], "failed", int(now * 1000), str(e))
                return True
            delay = e.retry_after_s if e.retry_after_s is not None else min(self.max_backoff_s, 2.0 ** (attempts - 1))
            self.state.notices.retry(notice["id"], int((now + delay) * 1000), str(e))
            return False
        except Exception as e:   # a bug here must not stop the queue for good: count it as an attempt
            log.exception("delivering notice %s to %s", notice.get("id"), dest)
            self.state.notices.retry(notice["id"], int((self.clock() + self.max_backoff_s) * 1000), repr(e))
            return False
        self.state.notices.done(dest, notice["id"], "delivered", int(self.clock() * 1000))
        return True

    def _send(self, n: dict) -> None:
        if n.get("missing"):
            raise NotDelivered("the notice expired before it could be delivered", permanent=True)
        project_name, sub = n["dest"].split("/", 1)
        project = self.state.projects.get(project_name) or {}
        body = n["payload"].encode()
        if n["kind"] == GITHUB:
            raw = json.loads(n["raw"])
            return self._github(project_name, project).send(n["event"], raw["event"], raw["record"], raw["build"])
        match = [s for s in json.loads(project.get("notifications") or "[]") if sub_id(s) == sub]
        if not match:
            raise NotDelivered("the subscription was removed", permanent=True)
        if n["kind"] == "apprise":
            text = json.loads(body)["text"]
            return deliver.via_apprise(match[0]["apprise"], f"gantry: {n['event']}", text)
        deliver.webhook(self.http, match[0]["url"], match[0]["secret"], n["event"], n["id"], body)

    def _github(self, project_name: str, project: dict) -> GitHubReporter:
        cfg = json.loads(project.get("github") or "null")
        if not cfg:
            raise NotDelivered("GitHub reporting was turned off", permanent=True)
        key = json.dumps(cfg, sort_keys=True)
        known = self.reporters.get(project_name)
        if known is None or known[0] != key:
            known = key, GitHubReporter(cfg, self.page_url, self.state.notices.github_deployment,
                                        self.state.notices.remember_github_deployment)
            self.reporters[project_name] = known
        return known[1]


def _subject(event: dict, record: dict, build: dict) -> dict:
    """What the event is about, as a subscriber sees it."""
    b = {"buildID": build.get("buildID"), "commitSHA": build.get("commitSHA"), "buildStatus": build.get("buildStatus"),
         "branch": json.loads(build.get("buildDetails") or "{}").get("branch")} if build else None
    if event.get("kind") == "build":
        return {"build": {**(b or {}), "error": record.get("error") or None}}
    out = {"deployment": {"deploymentID": record.get("deploymentID"), "status": record.get("status"),
                          "reason": record.get("reason") or None, "createdBy": record.get("createdBy"),
                          "previousBuildID": record.get("previousBuildID") or None}, "build": b}
    if event.get("kind") == "wave":
        out["wave"] = {"dc": event.get("dc"), "wave": int(event.get("wave") or 0)}
    return out
