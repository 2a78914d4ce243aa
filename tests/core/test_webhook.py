import json

import pytest

from gantry import webhook

SHA = "a" * 40


def payload(**kw) -> bytes:
    return json.dumps({"ref": "refs/heads/main", "before": "0" * 40, "after": SHA, "deleted": False,
                       "pusher": {"name": "dana"}, **kw}).encode()


def test_signature_is_hmac_sha256_of_the_raw_body():
    body = b'{"zen":"hi"}'
    # computed independently: printf '{"zen":"hi"}' | openssl dgst -sha256 -hmac secret
    assert webhook.sign("secret", body) == "sha256=a3fb8cb2d37fc18eec1b036a46a9a8ebd8e210d829b0b02a4be4d03b1d259492"
    good = webhook.sign("secret", body)
    assert webhook.signature_ok("secret", body, good)
    assert not webhook.signature_ok("secret", body + b" ", good)
    assert not webhook.signature_ok("other", body, good)
    assert not webhook.signature_ok("secret", body, None)
    assert not webhook.signature_ok("secret", body, "")
    assert not webhook.signature_ok("secret", body, good.replace("sha256=", "sha1="))


def test_push_to_the_default_branch_builds_its_head():
    d = webhook.decide("push", payload(), "main")
    assert d.build and d.sha == SHA and d.branch == "main" and d.pusher == "dana"


@pytest.mark.parametrize("event,body,reason", [
    ("ping", b"{}", "pong"),
    ("pull_request", b"{}", "only push"),
    ("push", payload(ref="refs/heads/feature"), "not the default branch"),
    ("push", payload(ref="refs/tags/v1"), "not a branch"),
    ("push", payload(deleted=True, after="0" * 40), "deleted"),
])
def test_other_deliveries_build_nothing(event, body, reason):
    d = webhook.decide(event, body, "main")
    assert not d.build and reason in d.reason


def test_a_custom_default_branch():
    assert webhook.decide("push", payload(ref="refs/heads/trunk"), "trunk").build
    assert not webhook.decide("push", payload(), "trunk").build


@pytest.mark.parametrize("body", [b"not json", b"[]", json.dumps({"after": SHA}).encode(),
                                  payload(after="xyz"), payload(after=None)])
def test_malformed_pushes_are_errors(body):
    with pytest.raises(ValueError):
        webhook.decide("push", body, "main")


def test_a_form_encoded_delivery_decides_as_its_json_payload():
    """GitHub's default content type for a new webhook is `form`: payload=<the JSON, URL-encoded>."""
    from urllib.parse import urlencode
    form = urlencode({"payload": payload().decode()}).encode()
    d = webhook.decide("push", form, "main", "application/x-www-form-urlencoded")
    assert d == webhook.decide("push", payload(), "main", "application/json")
    assert webhook.decide("push", form, "main", "application/x-www-form-urlencoded; charset=utf-8").build
    for bad in (b"", b"other=1", urlencode([("payload", "{}"), ("payload", "{}")]).encode(), b"\xff\xfe", b"payload=%7B"):
        with pytest.raises(ValueError):
            webhook.decide("push", bad, "main", "application/x-www-form-urlencoded")
    with pytest.raises(ValueError, match="not JSON"):
        webhook.decide("push", form, "main", "application/json")   # a form sent as JSON is not JSON
