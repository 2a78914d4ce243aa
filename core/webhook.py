"""GitHub push webhooks: signature check and what a delivery asks for. Pure logic, no I/O.

GitHub signs the raw body with HMAC-SHA256 under the webhook's secret and sends
`X-Hub-Signature-256: sha256=<hex>`; the event name is in `X-GitHub-Event` and a unique id per
delivery in `X-GitHub-Delivery` (a redelivery reuses it). The body is the JSON payload, or with
the content type `form` (GitHub's default for a new webhook) `payload=<the JSON, URL-encoded>`.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from urllib.parse import parse_qs

ZERO_SHA = "0" * 40
DELIVERY_RE = re.compile(r"^[A-Za-z0-9-]{1,64}$")


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature_ok(secret: str, body: bytes, header: str | None) -> bool:
    """Compared as bytes: a header with non-ASCII characters is simply wrong, not an error."""
    if not header:
        return False
    sent = header.strip().encode("utf-8", "replace")
    return hmac.compare_digest(sign(secret, body).encode(), sent)


@dataclass(frozen=True)
class Decision:
    build: bool                  # queue a build of `sha`
    reason: str                  # why (shown to whoever reads the delivery's response)
    sha: str | None = None
    branch: str | None = None
    pusher: str | None = None


FORM = "application/x-www-form-urlencoded"


def payload_of(body: bytes, content_type: str | None) -> bytes:
    """The JSON payload of a delivery of either content type (ValueError if a form has none)."""
    if (content_type or "").split(";")[0].strip().lower() != FORM:
        return body
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True, max_num_fields=16)
    except (UnicodeDecodeError, ValueError):
        raise ValueError(f"body is not a {FORM} form")
    if len(fields.get("payload", [])) != 1:
        raise ValueError("form body has no single 'payload' field (GitHub sends payload=<JSON>)")
    return fields["payload"][0].encode()


def decide(event: str | None, body: bytes, default_branch: str, content_type: str | None = None) -> Decision:
    """What a verified delivery asks for. Raises ValueError on a body that is not a push payload."""
    if event == "ping":
        return Decision(False, "pong")
    if event != "push":
        return Decision(False, f"event '{event}' is ignored; only push builds")
    try:
        payload = json.loads(payload_of(body, content_type))
    except ValueError as e:
        raise ValueError(str(e) if "form" in str(e) else "body is not JSON")
    if not isinstance(payload, dict) or not isinstance(payload.get("ref"), str):
        raise ValueError("push payload has no 'ref'")
    ref, after = payload["ref"], payload.get("after")
    if not ref.startswith("refs/heads/"):
        return Decision(False, f"{ref} is not a branch")
    branch = ref[len("refs/heads/"):]
    if branch != default_branch:
        return Decision(False, f"push to '{branch}', not the default branch '{default_branch}'", branch=branch)
    if payload.get("deleted") or after == ZERO_SHA:
        return Decision(False, f"branch '{branch}' was deleted", branch=branch)
    if not isinstance(after, str) or not re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", after):
        raise ValueError("push payload's 'after' is not a commit SHA")
    pusher = payload.get("pusher") or {}
    name = pusher.get("name") if isinstance(pusher, dict) else None
    return Decision(True, f"push to '{branch}'", sha=after, branch=branch,
                    pusher=name if isinstance(name, str) else None)
