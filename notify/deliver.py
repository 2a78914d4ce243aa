"""Sending one notice to one destination: a signed JSON webhook, or any service apprise speaks.
A sender returns when the destination took the notice, or raises `NotDelivered` saying whether
and when to try again."""
from __future__ import annotations

import hashlib
import hmac

import httpx

TIMEOUT_S = 10.0   # a destination that hangs holds only its own queue, this long an attempt


class NotDelivered(Exception):
    def __init__(self, why: str, retry_after_s: float | None = None, permanent: bool = False):
        super().__init__(why)
        self.retry_after_s, self.permanent = retry_after_s, permanent


def signature(secret: str, body: bytes) -> str:
    """`X-Gantry-Signature-256`: as GitHub signs its webhooks, "sha256=" and the HMAC-SHA256 of the body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def webhook(http: httpx.Client, url: str, secret: str, name: str, notice_id: str, body: bytes) -> None:
    try:
        r = http.post(url, content=body, timeout=TIMEOUT_S, headers={
            "Content-Type": "application/json", "User-Agent": "gantry-notify", "X-Gantry-Event": name,
            "X-Gantry-Delivery": notice_id, "X-Gantry-Signature-256": signature(secret, body)})
    except httpx.HTTPError as e:
        raise NotDelivered(f"{type(e).__name__}: {e}") from None
    if r.is_success:
        return
    retry = r.headers.get("retry-after")
    raise NotDelivered(f"HTTP {r.status_code}: {r.text[:200]}", float(retry) if retry and retry.isdigit() else None,
                       permanent=400 <= r.status_code < 500 and r.status_code not in (408, 409, 425, 429))


def via_apprise(url: str, title: str, body: str) -> None:
    import apprise   # the control plane's (the stack extra)
    sender = apprise.Apprise()
    if not sender.add(url):
        raise NotDelivered(f"apprise does not understand the URL's scheme {url.split('://', 1)[0]}://", permanent=True)
    if not sender.notify(title=title, body=body):
        raise NotDelivered("apprise could not deliver it (its log says why)")
