"""The one pagination scheme of every listing (builds, deployments, audit entries).

A listing is ordered newest first by "<created ms, 13 digits>:<ID>", which sorts lexically in
time order and breaks ties on the same millisecond by ID. A page's `nextCursor` is that key of
its last item, so the next page starts strictly after it: nothing is skipped or shown twice, even
while new items arrive.
"""
from __future__ import annotations

import re

_CURSOR_RE = re.compile(r"^(\d{13}):([0-9a-f]{32})$")
MIN_LIMIT, MAX_LIMIT, DEFAULT_LIMIT = 1, 100, 20


def key(created_ms: int, item_id: str) -> str:
    """An item's place in a listing; lexical order is (created, ID)."""
    return f"{created_ms:013d}:{item_id}"


def split(k: str) -> tuple[int, str]:
    created, item_id = k.split(":", 1)
    return int(created), item_id


def parse(cursor: str) -> str:
    """A cursor as given back by a client, checked; raises ValueError if malformed."""
    if not _CURSOR_RE.match(cursor):
        raise ValueError("nextCursor must look like '<createdAt ms, 13 digits>:<ID>'")
    return cursor


def page(keys_newest_first: list[str], limit: int) -> tuple[list[str], str | None]:
    """Given up to limit+1 keys after the cursor, the page and the next cursor."""
    items = keys_newest_first[:limit]
    more = len(keys_newest_first) > limit
    return items, (items[-1] if more and items else None)
