"""Credentials written into a URL (`https://user:token@host/repo.git`) reach no log line, error or
view: a repoURL may carry a deploy token, and a build's log and errors are read by every member
of its project."""
from __future__ import annotations

import re

_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s]+@")


def redact(text: str) -> str:
    return _USERINFO.sub(r"\1***@", text)
