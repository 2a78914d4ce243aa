"""The notifier against a real redis-server and real HTTP servers on loopback (no Ray): status
changes made by the state's own scripts become signed webhook deliveries in order, a subscriber
that is down gets them once it is back, one that hangs holds up no other, Slack's format goes
through apprise, and GitHub gets commit statuses and a Deployment, rate limit included."""
import hashlib
import hmac
import json
import time
import uuid

import pytest

from gantry.actors.notify.notifier import Notifier
from gantry.state import State
from gantry.statuses import Concurrency, DeploymentStatus as D
from http_fakes import FakeGitHub, Subscriber

SECRET = "s3cret-s3cret-s3cret"


@pytest.fixture
def state(redis_url):
    return State(redis_url)


def page(project, kind, ident):
    return f"https://gantry.example/ui#/p/{project}/{kind}/{ident}"


def project_with(state, **options) -> str:
    name = f"n-{uuid.uuid4().hex[:8]}"
    state.projects.put(name, "/src/app", {k: json.dumps(v) for k, v in options.items()})
    return name


def run_until(notifier, done, timeout_s=60.0):
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        notifier.tick()
        if done():
            return
        time.sleep(0.05)
    raise AssertionError("the notifier did not get there in time")


def built(state, project) -> str:
    """A build of `project` queued, built and published to its only region (SUCCEEDED)."""
    b = state.builds.create(project, "a" * 40, {"branch": "main"})["buildID"]
    state.builds.claim(b, "worker")
    state.replication.publish(b, "worker", {"artifactDigest": "blake3:" + "0" * 64}, "us", [],
                              {"bytesTransferred": 1, "chunksTransferred": 1, "bytesSkipped": 0, "chunksSkipped": 0})
    return b


def a_deployment_that_pauses_resumes_and_completes(state, project, build) -> str:
    dep = state.deployments.create(project, build, None, {"steps": [1.0]}, ["us"], "dana",
                                   concurrency=Concurrency.QUEUE)["deploymentID"]
    for to in (D.PAUSED, D.IN_PROGRESS, D.COMPLETED):
        state.deployments.set_status(dep, to, "by hand" if to == D.PAUSED else "")
    return dep


EXPECTED = ["build.queued", "build.succeeded", "deployment.started", "deployment.paused", "deployment.resumed",
            "deployment.completed"]


def test_subscribers_get_signed_events_in_order_and_a_hanging_one_holds_up_no_other(state):
    good, hanging = Subscriber(), Subscriber()
    hanging.hang()
    try:
        project = project_with(state, notifications=[
            {"events": ["build.*", "deployment.*"], "url": good.url + "/hook", "secret": SECRET},
            {"events": ["*"], "url": hanging.url + "/slow", "secret": SECRET}])
        notifier = Notifier(state, page, max_backoff_s=1)
        notifier.consume()   # nothing yet
        dep = a_deployment_that_pauses_resumes_and_completes(state, project, built(state, project))
        run_until(notifier, lambda: len(good.received) == len(EXPECTED))
        assert good.events() == EXPECTED and hanging.received == []   # it hangs on the first: the other went on
        for r in good.received:
            h = r["headers"]
            assert h["x-gantry-signature-256"] == "sha256=" + hmac.new(SECRET.encode(), r["body"], hashlib.sha256).hexdigest()
            assert h["x-gantry-event"] == json.loads(r["body"])["event"] and h["x-gantry-delivery"]
        last = json.loads(good.received[-1]["body"])
        assert last["deployment"]["deploymentID"] == dep and last["deployment"]["status"] == D.COMPLETED
        assert last["build"]["commitSHA"] == "a" * 40 and "completed" in last["text"]
        hanging.release()
        run_until(notifier, lambda: len(hanging.received) == len(EXPECTED))   # late, but all of them, in order
        assert hanging.events() == EXPECTED
        listed = state.notices.listed(project)
        assert len(listed) == 2 * len(EXPECTED) and {n["status"] for n in listed} == {"delivered"}
    finally:
        good.close()
        hanging.close()


def test_a_subscriber_down_for_30_s_gets_every_event_afterwards_in_order(state):
    sub = Subscriber()
    port = sub.port
    sub.close()   # down: nothing listens on its port
    project = project_with(state, notifications=[{"url": f"http://127.0.0.1:{port}/hook", "secret": SECRET}])
    notifier = Notifier(state, page, max_backoff_s=4)
    notifier.consume()
    a_deployment_that_pauses_resumes_and_completes(state, project, built(state, project))
    down_until = time.monotonic() + 30
    while time.monotonic() < down_until:
        notifier.tick()
        time.sleep(0.2)
    head = state.notices.listed(project)[-1]   # the oldest: at the head of the queue, tried again and again
    assert head["status"] == "pending" and int(head["attempts"]) >= 5 and "ConnectError" in head["error"]
    back = Subscriber(port=port)
    try:
        run_until(notifier, lambda: len(back.received) == len(EXPECTED), timeout_s=30)
        assert back.events() == EXPECTED
    finally:
        back.close()


def test_slack_format_through_apprise_reaches_a_slack_endpoint(state, monkeypatch):
    from apprise.plugins.slack import NotifySlack
    slack = Subscriber()
    monkeypatch.setattr(NotifySlack, "webhook_url", slack.url + "/services")   # Slack's host, on loopback
    try:
        project = project_with(state, notifications=[
            {"events": ["build.succeeded"], "apprise": "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7"}])
        notifier = Notifier(state, page)
        notifier.consume()
        b = built(state, project)
        run_until(notifier, lambda: len(slack.received) == 1)
        r = slack.received[0]
        assert r["path"] == "/services/T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7"
        body = json.loads(r["body"])
        text = json.dumps(body)
        assert "attachments" in body or "blocks" in body, body
        assert "gantry: build.succeeded" in text and f"build {b[:12]} of {project}" in text
    finally:
        slack.close()


def test_github_gets_commit_statuses_a_deployment_and_its_statuses_after_a_rate_limit(state):
    github = FakeGitHub("ghp_test", rate_limit_first=1, reset_s=2)
    try:
        project = project_with(state, github={"repo": "acme/web", "token": "ghp_test", "apiURL": github.url,
                                              "environment": "prod"})
        notifier = Notifier(state, page)
        notifier.consume()
        b = built(state, project)
        dep = state.deployments.create(project, b, None, {"steps": [1.0]}, ["us"], "dana")["deploymentID"]
        state.deployments.set_status(dep, D.COMPLETED)
        run_until(notifier, lambda: len(github.calls()) == 5)
        assert github.calls() == [("status", "pending"), ("status", "success"), ("deployment", "a" * 40),
                                  ("deployment_status", "in_progress"), ("deployment_status", "success")]
        assert github.problems == []
        limited, retried = github.requests[0], github.requests[1]
        assert limited["rateLimited"] and retried["at"] >= limited["reset"] - 1   # waited for the reset (1 s clock grain)
        status = github.requests[1]["body"]
        assert status["context"] == "gantry/build" and status["target_url"] == page(project, "b", b)
        made = github.requests[3]["body"]
        assert made["environment"] == "prod" and made["auto_merge"] is False and made["required_contexts"] == []
        assert github.requests[4]["body"]["log_url"] == page(project, "d", dep)
        assert state.notices.github_deployment(dep) == 1000
    finally:
        github.close()
