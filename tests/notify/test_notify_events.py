"""Which events a status change makes, what a subscription accepts, and what the API shows of it."""
import pytest
from pydantic import ValidationError

from gantry.notify.deliver import signature
from gantry.notify.events import named
from gantry.notify.subscriptions import GitHubIn, SubscriptionIn, public, wants


def ev(kind, status, came_from=""):
    return {"kind": kind, "id": "x" * 32, "project": "web", "status": status, "from": came_from}


def test_status_changes_are_named():
    assert named(ev("build", "QUEUED"), {}) == ["build.queued"]
    assert named(ev("build", "QUEUED", "BUILDING"), {}) == []   # a retry: nothing new for people
    assert named(ev("build", "BUILDING", "QUEUED"), {}) == []
    assert named(ev("build", "DEAD", "BUILDING"), {}) == ["build.failed"]
    assert named(ev("deployment", "IN_PROGRESS"), {}) == ["deployment.started"]
    assert named(ev("deployment", "IN_PROGRESS", "QUEUED"), {}) == ["deployment.started"]
    assert named(ev("deployment", "IN_PROGRESS", "WAITING_APPROVAL"), {}) == ["deployment.resumed"]
    assert named(ev("deployment", "WAITING_APPROVAL", "IN_PROGRESS"), {}) == ["deployment.waiting_approval"]
    assert named(ev("deployment", "IN_PROGRESS"), {"freezeOverride": "{}"}) == ["deployment.started", "freeze.override"]
    assert named(ev("wave", "DONE"), {}) == ["deployment.wave_done"]


def test_a_subscription_is_a_signed_webhook_or_an_apprise_url():
    s = SubscriptionIn(events=["deployment.*"], url="https://hooks.example/x?k=1", secret="s" * 16)
    assert wants(s.model_dump(), "deployment.completed") and not wants(s.model_dump(), "build.failed")
    for bad in ({"url": "https://x"}, {"url": "https://x", "secret": "s" * 16, "apprise": "slack://a/b/c"},
                {"apprise": "slack://a/b/c", "secret": "s" * 16}, {"events": ["deploy.*"], "apprise": "slack://a"},
                {"url": "file:///etc/passwd", "secret": "s" * 16}, {}):
        with pytest.raises(ValidationError):
            SubscriptionIn.model_validate(bad)
    with pytest.raises(ValidationError):
        GitHubIn(repo="acme/web")   # no token
    assert GitHubIn().repo is None   # {}: off


def test_the_api_never_shows_a_secret_or_an_apprise_urls_credentials():
    hook = public({"url": "https://user:pw@hooks.example:8443/x?token=abc", "secret": "s" * 16, "events": ["*"]})
    assert hook["url"] == "https://hooks.example:8443/x" and hook["secretConfigured"] is True
    chat = public({"apprise": "slack://T1/B1/secret-token"})
    assert chat["apprise"] == "slack://…" and "secret" not in str(chat)


def test_the_signature_is_githubs_scheme():
    # GitHub's own example (docs: "Validating webhook deliveries")
    assert signature("It's a Secret to Everybody", b"Hello, World!") == \
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
