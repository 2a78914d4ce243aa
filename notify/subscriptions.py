"""A project's notification subscriptions and its GitHub reporting, as the API takes them. Pure
(the senders are in `deliver` and `github`)."""
from __future__ import annotations

import fnmatch
import hashlib
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gantry.notify.events import EVENTS


class SubscriptionIn(BaseModel):
    """An event filter and one destination: a JSON webhook signed with `secret`, or an apprise URL."""
    model_config = ConfigDict(extra="forbid")
    events: list[str] = Field(default=["*"], min_length=1, max_length=50,
                              description='event names or patterns, e.g. "deployment.*" (see docs/features/notifications.md)')
    url: str | None = Field(default=None, pattern=r"^https?://[^\s]{1,2040}$",
                            description="a webhook: each event is POSTed as JSON, signed in X-Gantry-Signature-256")
    secret: str | None = Field(default=None, min_length=16, max_length=256, description="the webhook's HMAC key; never returned")
    apprise: str | None = Field(default=None, max_length=2048, pattern=r"^[a-z][a-z0-9+.-]{1,30}://[^\s]+$",
                                description="an apprise URL (slack://, msteams://, mailto://, ...); never returned whole")

    @field_validator("events")
    @classmethod
    def _events(cls, v: list[str]) -> list[str]:
        unknown = [p for p in v if not fnmatch.filter(EVENTS, p)]
        if unknown:
            raise ValueError(f"no event matches {unknown}; events: {', '.join(EVENTS)}")
        return v

    @model_validator(mode="after")
    def _one(self):
        if (self.url is None) == (self.apprise is None):
            raise ValueError("a subscription has a url (a signed webhook) or an apprise URL, not both")
        if self.url is not None and self.secret is None:
            raise ValueError("a webhook subscription needs a secret (at least 16 characters) to sign with")
        if self.apprise is not None and self.secret is not None:
            raise ValueError("an apprise subscription takes no secret (its URL holds its credentials)")
        return self


class GitHubIn(BaseModel):
    """Commit statuses and Deployments on a GitHub repository ({} turns it off)."""
    model_config = ConfigDict(extra="forbid")
    repo: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}$",
                             description="owner/name on GitHub")
    token: str | None = Field(default=None, min_length=1, max_length=512, description="a token that may write "
                              "statuses and deployments; never returned")
    apiURL: str = Field(default="https://api.github.com", pattern=r"^https?://[^\s]{1,2040}$",
                        description="the REST API's base (GitHub Enterprise: https://HOST/api/v3)")
    environment: str = Field(default="production", min_length=1, max_length=255,
                             description="the Deployments' environment name")

    @model_validator(mode="after")
    def _both(self):
        if (self.repo is None) != (self.token is None):
            raise ValueError("GitHub reporting needs both repo and token ({} turns it off)")
        return self


def sub_id(sub: dict) -> str:
    """A subscription's stable name: the same destination keeps its queue across updates."""
    return hashlib.sha256((sub.get("url") or sub.get("apprise") or "").encode()).hexdigest()[:12]


def wants(sub: dict, name: str) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in sub.get("events") or ["*"])


def public(sub: dict) -> dict:
    """What the API shows of a subscription: never its secret, nor an apprise URL's credentials."""
    out = {"id": sub_id(sub), "events": sub.get("events") or ["*"]}
    if sub.get("url"):
        parts = urlsplit(sub["url"])
        out.update(url=f"{parts.scheme}://{parts.hostname}{':' + str(parts.port) if parts.port else ''}{parts.path}",
                   secretConfigured=bool(sub.get("secret")))
    else:
        out["apprise"] = sub["apprise"].split("://", 1)[0] + "://…"
    return out
